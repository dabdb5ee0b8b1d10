"""Assemble a complete Triton model repository from a checkpoint, in a temporary folder, then move it in place."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_ner.core import names, variants
from triton_ner.core.variants import Format, Precision, Target, Variant
from triton_ner.export import configs, convert, steps
from triton_ner.export.configs import ServingOptions
from triton_ner.export.model_io import check_config_against_model
from triton_ner.export.source import Checkpoint, ExportError

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # the same class, named there before Python 3.11
    from importlib.abc import Traversable

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The Python-backend models whose code (<model>/1/model.py) every export copies from the package data
# triton_ner.model_repository (the folder model_repository/ of a checkout).
PYTHON_MODELS = (names.TEXT_STEP, names.MODEL)
LIBRARIES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "openvino", "nncf", "tritonclient",
             "nvidia-pytriton")


def _installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """``{name: version}`` of those of ``names`` that are installed: an export environment need not have them all
    (the export image has no tritonserver wheel)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class ExportPlan:
    """What to export: formats, precisions (FP32 is always exported: it is the reference), targets."""

    formats: frozenset[Format] = frozenset({Format.ONNX})
    precisions: frozenset[Precision] = frozenset({Precision.FP32})
    target: Target = Target.BOTH
    options: ServingOptions = field(default_factory=ServingOptions)
    optimize: bool = True
    min_agreement: float = convert.MIN_AGREEMENT
    keep_going: bool = False  # a lower precision that fails its proof is left out (manifest "refused"), not fatal

    def check(self) -> None:
        """Refuse combinations that have no meaning, in one line."""
        if Precision.INT8 in self.precisions and not {Format.ONNX, Format.OPENVINO} & self.formats:
            raise ExportError("int8 is an ONNX or OpenVINO variant: add --format onnx or openvino")
        if Precision.BF16 in self.precisions and not {Format.TORCHSCRIPT, Format.OPENVINO} & self.formats:
            raise ExportError("bf16 runs the TorchScript model cast at load or OpenVINO in BF16: add --format "
                              "torchscript, openvino or all")
        if Precision.FP16 in self.precisions and self.target is Target.CPU:
            raise ExportError("fp16 is a GPU precision: use --target gpu or both")
        if Precision.FP16 in self.precisions and self.options.tensorrt and Format.TORCHSCRIPT not in self.formats:
            raise ExportError("--tensorrt builds FP16 engines from the plain FP32 graph: drop --precision fp16")
        if Precision.INT8 in self.precisions and self.target is Target.GPU:
            raise ExportError("int8 (dynamic quantization) is a CPU precision: use --target cpu or both")
        if Precision.BF16 in self.precisions and self.target is Target.GPU:
            raise ExportError("bf16 is the CPU variant of the TorchScript model: use --target cpu or both")

    @property
    def variants(self) -> list[Variant]:
        return variants.exported(set(self.formats), set(self.precisions), self.target, self.options.tensorrt)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_code() -> Traversable:
    """The installed models' code: ``<model>/1/model.py`` for each Python-backend model."""
    return resources.files("triton_ner.model_repository")


def _is_models_code(folder: Path) -> bool:
    """Whether ``folder`` is where the models' code is installed from (model_repository/ of a checkout)."""
    template, copy = (root / names.TEXT_STEP / "1" / "model.py" for root in (models_code(), folder))
    assert isinstance(copy, Path)  # under folder; typed as the Traversable it shares with template
    return isinstance(template, Path) and copy.exists() and copy.samefile(template)


def _copy_code(repository: Path, code: Traversable | None = None) -> None:
    """Version folders for every model, and each Python-backend model's ``model.py``; a missing file is an
    error naming it (a repository without it would not load)."""
    code = code or models_code()
    for model in (names.ENSEMBLE, *PYTHON_MODELS):
        (repository / model / "1").mkdir(parents=True, exist_ok=True)
    for model in PYTHON_MODELS:
        source = code / model / "1" / "model.py"
        if not source.is_file():
            raise ExportError(f"the code of the {model} model ({model}/1/model.py) is missing from {code}: "
                              "reinstall distilbert-ner-triton")
        (repository / model / "1" / "model.py").write_bytes(source.read_bytes())


def code_is_current(repository: Path, code: Traversable | None = None) -> bool:
    """Whether every Python-backend model's ``model.py`` in ``repository`` is the one this installation ships (an
    export made by an older version keeps its own copies)."""
    code = code or models_code()
    def same(model: str) -> bool:
        written = repository / model / "1" / "model.py"
        return written.is_file() and written.read_bytes() == (code / model / "1" / "model.py").read_bytes()

    return all(same(model) for model in PYTHON_MODELS)


def _save_tokenizer(tokenizer: PreTrainedTokenizerBase, model: Any, folder: Path) -> None:
    """The tokenizer files and the checkpoint's config.json (labels), which the text step reads."""
    folder.mkdir(parents=True)
    tokenizer.save_pretrained(folder)
    model.config.to_json_file(folder / "config.json")


def _existing_export(output: Path) -> bool:
    return (output / names.MANIFEST).exists() or any((output / names.MODEL / "1").glob("model*.onnx")) \
        or any((output / names.MODEL / "1").glob("model*.xml"))


def build(checkpoint: Checkpoint, output: Path, plan: ExportPlan = ExportPlan(), force: bool = False,
          log: Callable[[str], None] = print) -> dict:
    """Export ``checkpoint`` into the repository ``output``; return the manifest.

    Every artifact is proven before the repository is moved in place, so a failed export leaves nothing
    half-written. An existing export is replaced only with ``force``.
    """
    from transformers import AutoTokenizer

    plan.check()
    output = output.resolve()
    if _is_models_code(output):
        raise ExportError(f"{output} holds the models' code that every export copies (committed): export into "
                          "another folder (the default is build/model_repository)")
    if _existing_export(output) and not force:
        raise ExportError(f"{output} already holds an exported model: pass --force to replace it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    except OSError as error:
        raise ExportError(f"cannot write to {output.parent}: {error.strerror}") from None
    started = time.perf_counter()

    def step(message: str) -> None:
        log(f"[{time.perf_counter() - started:5.1f} s] {message}")

    try:
        step(f"loading {checkpoint.source}")
        model = convert.load_model(checkpoint.path)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
        if not tokenizer.is_fast:
            raise ExportError(f"{checkpoint.path}: a fast tokenizer (tokenizer.json) is required for offsets")
        _copy_code(work)
        tokenizer_dir = work / names.TEXT_STEP / "1" / names.TOKENIZER_DIR
        _save_tokenizer(tokenizer, model, tokenizer_dir)
        version_dir = work / names.MODEL / "1"
        proofs, refused = steps.export_files(model, tokenizer, tokenizer_dir, version_dir, plan, step)
        kept = [v for v in plan.variants if _variant_key(v) not in refused]
        for key, entry in refused.items():
            entry["config_names"] = [v.config_name for v in plan.variants if _variant_key(v) == key]
            step(f"left out {', '.join(entry['config_names'])}: {entry['error']}")
        options = replace(plan.options, num_labels=model.config.num_labels)
        files = configs.repository_configs(kept, options)
        configs.write_configs(work, files)
        for variant in kept:
            check_config_against_model(files[configs.model_config_path(variant)], version_dir / variant.model_file)
        for path in files:  # every file parses back as a ModelConfig
            text_format.Parse((work / path).read_text(), mc.ModelConfig())
        manifest = {
            "source": checkpoint.source,
            "revision": checkpoint.revision,
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "formats": sorted(f.value for f in plan.formats),
            "precisions": sorted(p.value for p in plan.precisions | {Precision.FP32}),
            "onnx_opset": convert.OPSET if Format.ONNX in plan.formats else None,
            "config_names": [v.config_name or "config" for v in kept],
            "refused": refused,  # artifacts that failed their proof under keep_going, and the variants left out
            "serving_options": asdict(options),  # the limits, queues and instances written into the configs
            "proofs": proofs,
            "libraries": _installed_versions(LIBRARIES),
            "python": platform.python_version(),
            "artifacts": {str(p.relative_to(work)): _sha256(p) for p in sorted(work.rglob("*")) if p.is_file()},
        }
        (work / names.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(work, output)
        step(f"wrote {output}")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _variant_key(variant: Variant) -> str:
    return steps.proof_key(variant.model_file, variant.run_precision)


def _replace(new: Path, output: Path) -> None:
    """Move ``new`` to ``output``, swapping out any previous folder (two renames, no partial state)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}-old-{os.getpid()}")
        output.rename(old)
    new.rename(output)
    if old:
        shutil.rmtree(old, ignore_errors=True)

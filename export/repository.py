"""Assemble a complete Triton model repository from a checkpoint, in a temporary folder, then move it in place."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import configs, convert
from export.configs import Format, Precision, ServingOptions, Target, Variant
from export.source import Checkpoint, ExportError
from ner import names
from ner.runtime import load_runner

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The committed repository holds the models' code; every export copies it from here.
TEMPLATE = PROJECT_ROOT / "model_repository"
CODE_FILES = ("model.py", ".gitkeep")
LIBRARIES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "tritonclient", "nvidia-pytriton")


@dataclass(frozen=True)
class ExportPlan:
    """What to export: formats, precisions (FP32 is always exported: it is the reference), targets."""

    formats: frozenset[Format] = frozenset({Format.ONNX})
    precisions: frozenset[Precision] = frozenset({Precision.FP32})
    target: Target = Target.BOTH
    options: ServingOptions = field(default_factory=ServingOptions)
    optimize: bool = True
    min_agreement: float = convert.MIN_AGREEMENT

    def check(self) -> None:
        """Refuse combinations that have no meaning, in one line."""
        if self.precisions - {Precision.FP32} and Format.ONNX not in self.formats:
            raise ExportError("fp16 and int8 are ONNX variants: add --format onnx (or both)")
        if Precision.FP16 in self.precisions and self.target is Target.CPU:
            raise ExportError("fp16 is a GPU precision: use --target gpu or both")
        if Precision.INT8 in self.precisions and self.target is Target.GPU:
            raise ExportError("int8 (dynamic quantization) is a CPU precision: use --target cpu or both")

    @property
    def variants(self) -> list[Variant]:
        return configs.variants(set(self.formats), set(self.precisions), self.target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_code(repository: Path) -> None:
    for model in (names.ENSEMBLE, names.TOKENIZER, names.MODEL, names.AGGREGATE):
        (repository / model / "1").mkdir(parents=True, exist_ok=True)
        for name in CODE_FILES:
            if (TEMPLATE / model / "1" / name).exists():
                shutil.copy2(TEMPLATE / model / "1" / name, repository / model / "1" / name)


def _save_tokenizer(tokenizer, model, folder: Path) -> None:
    """The tokenizer files and the checkpoint's config.json (labels), all the text steps read."""
    folder.mkdir(parents=True)
    tokenizer.save_pretrained(folder)
    model.config.to_json_file(folder / "config.json")


def _existing_export(output: Path) -> bool:
    return (output / names.MANIFEST).exists() or any((output / names.MODEL / "1").glob("model*.onnx"))


def model_io_names(path: Path) -> tuple[list[str], list[str]]:
    """Input and output names of a model file: the ONNX graph's, or TorchScript's ``forward`` arguments."""
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        return [i.name for i in graph.input], [o.name for o in graph.output]
    return convert.torchscript_inputs(path), [names.LOGITS]


def check_config_against_model(config: mc.ModelConfig, model_file: Path) -> None:
    """The config's tensors exist in the model (the pytorch backend's ``<name>__<index>`` resolved)."""
    inputs, outputs = model_io_names(model_file)

    def resolve(name: str, available: list[str]) -> str:
        base, _, index = name.rpartition("__")
        if base and index.isdigit():  # NAMED_INDEX: the index is the position in forward()
            return available[int(index)] if int(index) < len(available) and available[int(index)] == base else ""
        return name if name in available else ""

    for tensor, available in [(t, inputs) for t in config.input] + [(t, outputs) for t in config.output]:
        if not resolve(tensor.name, available):
            raise ExportError(f"{config.name}: tensor {tensor.name!r} is not in {model_file.name} "
                              f"(it has {', '.join(available)})")


def build(checkpoint: Checkpoint, output: Path, plan: ExportPlan = ExportPlan(), force: bool = False,
          log=print) -> dict:
    """Export ``checkpoint`` into the repository ``output``; return the manifest.

    Every artifact is proven before the repository is moved in place, so a failed export leaves nothing
    half-written. An existing export is replaced only with ``force``.
    """
    from transformers import AutoTokenizer

    plan.check()
    output = output.resolve()
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
        tokenizer_dir = work / names.TOKENIZER / "1" / names.TOKENIZER_DIR
        _save_tokenizer(tokenizer, model, tokenizer_dir)
        version_dir = work / names.MODEL / "1"
        proofs = _export_artifacts(model, tokenizer, tokenizer_dir, version_dir, plan, step)
        files = configs.repository_configs(plan.variants, plan.options)
        configs.write_configs(work, files)
        for variant in plan.variants:
            relative = f"{names.MODEL}/{'configs/' + variant.config_name if variant.config_name else 'config'}.pbtxt"
            check_config_against_model(files[relative], version_dir / variant.model_file)
        for path in files:  # every file parses back as a ModelConfig
            text_format.Parse((work / path).read_text(), mc.ModelConfig())
        manifest = {
            "source": checkpoint.source,
            "revision": checkpoint.revision,
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "formats": sorted(f.value for f in plan.formats),
            "precisions": sorted(p.value for p in plan.precisions | {Precision.FP32}),
            "onnx_opset": convert.OPSET if Format.ONNX in plan.formats else None,
            "config_names": [v.config_name or "config" for v in plan.variants],
            "proofs": proofs,
            "libraries": {lib: metadata.version(lib) for lib in LIBRARIES},
            "python": platform.python_version(),
            "artifacts": {str(p.relative_to(work)): _sha256(p) for p in sorted(work.rglob("*")) if p.is_file()},
        }
        (work / names.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(work, output)
        step(f"wrote {output}")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_artifacts(model, tokenizer, tokenizer_dir: Path, version_dir: Path, plan: ExportPlan, step) -> dict:
    """Write and prove every model file of the plan; return the figures for the manifest."""
    proofs: dict[str, dict] = {}

    def prove(path: Path, label: str = "") -> dict:
        proof = convert.prove_logits(model, tokenizer, load_runner(path))
        step(f"{label or path.name}: max |Δ logits| vs PyTorch = {proof.max_abs_diff:.2e} over {proof.batches} batches "
             f"(tolerance {convert.TOLERANCE:g})")
        if not proof.ok:
            raise ExportError(f"{path.name}: logits differ from PyTorch by {proof.max_abs_diff:.2e} "
                              f"> {convert.TOLERANCE:g}")
        return {"max_abs_logit_diff": proof.max_abs_diff, "tolerance": convert.TOLERANCE}

    reference: dict[str, set] = {}

    def agree(path: Path, fp32: Path) -> None:
        if "fp32" not in reference:
            reference["fp32"] = convert.corpus_entities(fp32, tokenizer_dir)
        result = convert.entity_agreement(reference["fp32"], convert.corpus_entities(path, tokenizer_dir),
                                          plan.min_agreement)
        step(f"{path.name}: {result.agreement:.2%} of entities identical to FP32 ({result.variant_entities} vs "
             f"{result.reference_entities} entities; minimum {plan.min_agreement:.0%})")
        if not result.ok:
            raise ExportError(f"{path.name}: only {result.agreement:.2%} of entities agree with FP32 "
                              f"(minimum {plan.min_agreement:.0%})")
        proofs[path.name] = {"entity_agreement": result.agreement, "minimum": plan.min_agreement,
                             "reference_entities": result.reference_entities,
                             "variant_entities": result.variant_entities}

    if Format.ONNX in plan.formats:
        fp32 = version_dir / configs.MODEL_FILES[Format.ONNX, Precision.FP32]
        plain = version_dir / ".plain.onnx"
        step("exporting ONNX")
        convert.export_onnx(model, tokenizer, plain)
        proofs[fp32.name] = prove(plain, f"{fp32.name} (plain graph)") | {"optimized": False}
        # TensorRT fuses by itself and does not run ONNX Runtime's fused operators: keep the plain graph then.
        if plan.optimize and not plan.options.tensorrt:
            step("optimizing ONNX (fused attention, GELU, layer normalization)")
            try:
                convert.optimize_onnx(plain, fp32, model.config)
                proofs[fp32.name] = prove(fp32, f"{fp32.name} (optimized graph)") | {"optimized": True}
                plain.unlink()
            except Exception as error:  # noqa: BLE001: an optimizer failure only costs the optimization
                step(f"keeping the plain graph: {str(error).splitlines()[0]}")
                fp32.unlink(missing_ok=True)
        if plain.exists():
            plain.rename(fp32)
        if Precision.FP16 in plan.precisions:
            step("converting to FP16")
            agree(convert.fp16_onnx(fp32, version_dir / configs.MODEL_FILES[Format.ONNX, Precision.FP16],
                                    model.config), fp32)
        if Precision.INT8 in plan.precisions:
            step("quantizing to INT8")
            agree(convert.int8_onnx(fp32, version_dir / configs.MODEL_FILES[Format.ONNX, Precision.INT8]), fp32)
    if Format.TORCHSCRIPT in plan.formats:
        step("tracing TorchScript")
        traced = convert.export_torchscript(model, tokenizer,
                                            version_dir / configs.MODEL_FILES[Format.TORCHSCRIPT, Precision.FP32])
        proofs[traced.name] = prove(traced)
    return proofs


def _replace(new: Path, output: Path) -> None:
    """Move ``new`` to ``output``, swapping out any previous folder (two renames, no partial state)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}-old-{os.getpid()}")
        output.rename(old)
    new.rename(output)
    if old:
        shutil.rmtree(old, ignore_errors=True)

"""Assemble a complete Triton model repository from a checkpoint, in a temporary folder, then move it in place."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_ner.export import configs, convert
from triton_ner.export.model_io import check_config_against_model
from triton_ner.export.configs import ServingOptions
from triton_ner.core import variants
from triton_ner.core.variants import MODEL_FILES, Format, Precision, Target, Variant
from triton_ner.export.source import Checkpoint, EntitiesDisagree, ExportError, LogitsDiffer, UnsafeGraph
from triton_ner.core import names
from triton_ner.core.runners import load_runner

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
    return all((repository / model / "1" / "model.py").is_file()
               and (repository / model / "1" / "model.py").read_bytes() == (code / model / "1" / "model.py").read_bytes()
               for model in PYTHON_MODELS)


def _save_tokenizer(tokenizer, model, folder: Path) -> None:
    """The tokenizer files and the checkpoint's config.json (labels), which the text step reads."""
    folder.mkdir(parents=True)
    tokenizer.save_pretrained(folder)
    model.config.to_json_file(folder / "config.json")


def _existing_export(output: Path) -> bool:
    return (output / names.MANIFEST).exists() or any((output / names.MODEL / "1").glob("model*.onnx")) \
        or any((output / names.MODEL / "1").glob("model*.xml"))


def build(checkpoint: Checkpoint, output: Path, plan: ExportPlan = ExportPlan(), force: bool = False,
          log=print) -> dict:
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
        proofs, refused = _export_artifacts(model, tokenizer, tokenizer_dir, version_dir, plan, step)
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


def proof_key(model_file: str, run_precision: Precision) -> str:
    """The manifest's key of a proof: the file, with the precision it is run in when it is cast or run in another
    one than FP32 (``model.pt:bf16``, ``model_bf16.xml:bf16``)."""
    return model_file if run_precision is Precision.FP32 else f"{model_file}:{run_precision.value}"


def _variant_key(variant: Variant) -> str:
    return proof_key(variant.model_file, variant.run_precision)


# Lower precisions whose agreement with FP32 depends on the CPU's matrix instructions (rounding and accumulation
# differ between AVX2, AVX-512 VNNI/BF16 and AMX): a failed proof names the instructions it ran on.
_CPU_DEPENDENT = {Precision.INT8, Precision.BF16}
_MATRIX_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


def _cpu_note(precision: Precision) -> str:
    if precision not in _CPU_DEPENDENT:
        return ""
    flags = ", ".join(sorted(variants.cpu_flags() & _MATRIX_FLAGS)) or "none of AVX2, AVX-512, AMX"
    return f"; {precision.value.upper()} results depend on the CPU's matrix instructions (this one has: {flags})"


def _export_artifacts(model, tokenizer, tokenizer_dir: Path, version_dir: Path, plan: ExportPlan, step
                      ) -> tuple[dict, dict]:
    """Write and prove every model file of the plan; return the proofs' figures for the manifest, each with the
    reference it was held against, and the artifacts refused under ``keep_going`` (by proof key, with the error)."""
    proofs: dict[str, dict] = {}
    refused: dict[str, dict] = {}
    pytorch = "PyTorch (the checkpoint, FP32 on CPU)"

    def prove(path: Path, label: str = "") -> dict:
        proof = convert.prove_logits(model, tokenizer, load_runner(path))
        step(f"{label or path.name}: max |Δ logits| vs PyTorch = {proof.max_abs_diff:.2e} over {proof.batches} batches "
             f"(tolerance {convert.TOLERANCE:g})")
        if not proof.ok:
            raise LogitsDiffer(path.name, pytorch, f"max |Δ logits| {proof.max_abs_diff:.2e}",
                               f"≤ {convert.TOLERANCE:g}")
        return {"max_abs_logit_diff": proof.max_abs_diff, "tolerance": convert.TOLERANCE, "reference": pytorch}

    reference: dict[Path, set] = {}  # the entities of each FP32 file, found once

    def agree(path: Path, fp32: Path, precision: Precision = Precision.FP32) -> None:
        """Entities of ``path`` (run in ``precision``: a TorchScript file cast to it, OpenVINO in it) against
        those of ``fp32``, the FP32 file of its own format."""
        device = "cuda" if precision is Precision.FP16 and path.suffix == ".pt" and _has_cuda() else "cpu"
        if fp32 not in reference:
            reference[fp32] = convert.corpus_entities(fp32, tokenizer_dir)
        result = convert.entity_agreement(reference[fp32], convert.corpus_entities(
            path, tokenizer_dir, "fp32" if path.suffix == ".onnx" else precision.value, device), plan.min_agreement)
        own = path.suffix == ".onnx" or precision is Precision.FP32
        label = path.name if own else f"{path.name} in {precision.value.upper()} on {device}"
        step(f"{label}: {result.agreement:.2%} of entities identical to {fp32.name} ({result.variant_entities} vs "
             f"{result.reference_entities} entities; minimum {plan.min_agreement:.0%})")
        proof = {"entity_agreement": result.agreement, "minimum": plan.min_agreement, "device": device,
                 "reference": fp32.name, "reference_entities": result.reference_entities,
                 "variant_entities": result.variant_entities}
        key = proof_key(path.name, precision)
        if result.ok:
            proofs[key] = proof
            return
        kind = Precision.INT8 if "int8" in path.name else precision
        error = EntitiesDisagree(label, f"the entities of {fp32.name}", f"{result.agreement:.2%} identical",
                                 f"≥ {plan.min_agreement:.0%}", _cpu_note(kind) if device == "cpu" else "")
        if not plan.keep_going:
            raise error
        refused[key] = proof | {"error": str(error)}
        if path.suffix != ".pt":  # a file of its own (the TorchScript file is FP32's too)
            path.unlink(missing_ok=True)
            path.with_suffix(".bin").unlink(missing_ok=True)

    if {Format.ONNX, Format.OPENVINO} & plan.formats:
        fp32 = version_dir / MODEL_FILES[Format.ONNX, Precision.FP32]
        plain = version_dir / ".plain.onnx"
        step("exporting ONNX")
        convert.export_onnx(model, tokenizer, plain)
        proofs[fp32.name] = prove(plain, f"{fp32.name} (plain graph)") | {"optimized": False}
    if Format.OPENVINO in plan.formats:
        _export_openvino(plain, version_dir, plan, tokenizer, proofs, prove, agree, step)
        if Format.ONNX not in plan.formats:
            del proofs[fp32.name]
            plain.unlink()
    if Format.ONNX in plan.formats:
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
        if Precision.FP16 in plan.precisions and not plan.options.tensorrt:
            step("converting to FP16")
            agree(convert.fp16_onnx(fp32, version_dir / MODEL_FILES[Format.ONNX, Precision.FP16],
                                    model.config), fp32)
        if Precision.INT8 in plan.precisions:
            step("quantizing to INT8")
            agree(convert.int8_onnx(fp32, version_dir / MODEL_FILES[Format.ONNX, Precision.INT8]), fp32)
    if Format.TORCHSCRIPT in plan.formats:
        step("tracing TorchScript")
        traced = convert.export_torchscript(model, tokenizer,
                                            version_dir / MODEL_FILES[Format.TORCHSCRIPT, Precision.FP32])
        devices = convert.torchscript_constants(traced)
        if devices:
            raise UnsafeGraph(f"{traced.name}: the traced graph holds device constants ({', '.join(devices)}): it "
                              "would run part of the model on the tracing device wherever it is loaded")
        overflowing = convert.torchscript_overflowing_constants(traced)
        if overflowing:
            raise UnsafeGraph(f"{traced.name}: the traced graph holds constants that overflow in BF16 or FP16 "
                              f"({', '.join(map(str, overflowing))}): cast to those precisions it would give NaN")
        proofs[traced.name] = prove(traced) | {"device_constants": devices, "overflowing_constants": overflowing}
        for precision in (Precision.BF16, Precision.FP16):
            if precision in plan.precisions:
                agree(traced, traced, precision)
    return proofs, refused


def _export_openvino(plain: Path, version_dir: Path, plan: ExportPlan, tokenizer, proofs: dict, prove, agree,
                     step) -> None:
    """OpenVINO IR from the plain ONNX graph, proven on logits in FP32; its BF16 copy (FP16 weights) proven on
    entities; INT8 quantized by NNCF and proven on entities."""
    ir = version_dir / MODEL_FILES[Format.OPENVINO, Precision.FP32]
    step("converting to OpenVINO IR")
    proofs[ir.name] = prove(convert.openvino_ir(plain, ir))
    if Precision.BF16 in plan.precisions:
        agree(convert.openvino_ir(plain, version_dir / MODEL_FILES[Format.OPENVINO, Precision.BF16],
                                  fp16_weights=True), ir, Precision.BF16)
    if Precision.INT8 in plan.precisions:
        step(f"quantizing the OpenVINO IR to INT8 (NNCF, {convert.CALIBRATION_TEXTS} calibration sentences)")
        agree(convert.int8_openvino(ir, version_dir / MODEL_FILES[Format.OPENVINO, Precision.INT8],
                                    tokenizer), ir)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _replace(new: Path, output: Path) -> None:
    """Move ``new`` to ``output``, swapping out any previous folder (two renames, no partial state)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}-old-{os.getpid()}")
        output.rename(old)
    new.rename(output)
    if old:
        shutil.rmtree(old, ignore_errors=True)

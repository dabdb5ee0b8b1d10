"""The export's model files as a list of proven steps: each writes one file and names what it is proven against.

A step whose ``reference`` is None is proven on logits against PyTorch (the checkpoint, FP32 on CPU); any other is
proven on the entities of a corpus against those of ``reference``, the FP32 file of its own format. A failed proof
raises a typed error naming the file, the figure and the bound (:mod:`triton_ner.export.source`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triton_ner.core import variants
from triton_ner.core.runners import load_runner
from triton_ner.core.variants import MODEL_FILES, Format, Precision
from triton_ner.export import convert
from triton_ner.export.source import EntitiesDisagree, LogitsDiffer, UnsafeGraph

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from triton_ner.export.assemble import ExportPlan

PYTORCH = "PyTorch (the checkpoint, FP32 on CPU)"
PLAIN_ONNX = ".plain.onnx"  # the exported graph before ONNX Runtime's fusions: OpenVINO's source too

# Lower precisions whose agreement with FP32 depends on the CPU's matrix instructions (rounding and accumulation
# differ between AVX2, AVX-512 VNNI/BF16 and AMX): a failed proof names the instructions it ran on.
_CPU_DEPENDENT = {Precision.INT8, Precision.BF16}
_MATRIX_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


def proof_key(model_file: str, run_precision: Precision) -> str:
    """The manifest's key of a proof: the file, with the precision it is run in when it is cast or run in another
    one than FP32 (``model.pt:bf16``, ``model_bf16.xml:bf16``)."""
    return model_file if run_precision is Precision.FP32 else f"{model_file}:{run_precision.value}"


@dataclass(frozen=True)
class Step:
    """One model file of the export: how it is written, what it holds and what proves it.

    ``make`` writes ``file`` into the version folder it is given; what it returns, if a dict, goes into the
    manifest's proof (``make`` None: the file is an earlier step's, run in another precision). ``fallback``
    writes it instead when ``make`` or its proof fails. An ``intermediate`` file is proven and used by later
    steps, then deleted. ``says``: the progress line before ``make``; ``label``: the file's name in its proof.
    """

    file: str
    make: Callable[[Path], object] | None
    says: str = ""
    label: str = ""
    precision: Precision = Precision.FP32
    run_in: Precision = Precision.FP32
    reference: str | None = None
    fallback: Callable[[Path], object] | None = None
    intermediate: bool = False

    @property
    def key(self) -> str:
        return proof_key(self.file, self.run_in)


def plan_steps(model: Any, tokenizer: PreTrainedTokenizerBase, plan: ExportPlan) -> list[Step]:
    """The steps of an :class:`~triton_ner.export.assemble.ExportPlan`, in the order they run."""
    onnx, ir = MODEL_FILES[Format.ONNX, Precision.FP32], MODEL_FILES[Format.OPENVINO, Precision.FP32]
    traced = MODEL_FILES[Format.TORCHSCRIPT, Precision.FP32]
    optimize = plan.optimize and not plan.options.tensorrt  # TensorRT fuses by itself, not ONNX Runtime's operators
    # Each file's name is a variable of its own: the steps' functions read them when they run.
    found: list[Step] = []
    if Format.OPENVINO in plan.formats or (Format.ONNX in plan.formats and optimize):
        found.append(Step(PLAIN_ONNX, lambda d: convert.export_onnx(model, tokenizer, d / PLAIN_ONNX),
                          "exporting ONNX", f"{onnx} (plain graph)", intermediate=True))
    if Format.OPENVINO in plan.formats:
        found.append(Step(ir, lambda d: convert.openvino_ir(d / PLAIN_ONNX, d / ir), "converting to OpenVINO IR"))
        if Precision.BF16 in plan.precisions:
            ir_bf16 = MODEL_FILES[Format.OPENVINO, Precision.BF16]
            found.append(Step(ir_bf16, lambda d: convert.openvino_ir(d / PLAIN_ONNX, d / ir_bf16, fp16_weights=True),
                              "converting to OpenVINO IR with FP16 weights (run in BF16)",
                              precision=Precision.BF16, run_in=Precision.BF16, reference=ir))
        if Precision.INT8 in plan.precisions:
            ir_int8 = MODEL_FILES[Format.OPENVINO, Precision.INT8]
            found.append(Step(ir_int8, lambda d: convert.int8_openvino(d / ir, d / ir_int8, tokenizer),
                              "quantizing the OpenVINO IR to INT8 (NNCF, "
                              f"{convert.CALIBRATION_TEXTS} calibration sentences)",
                              precision=Precision.INT8, reference=ir))
    if Format.ONNX in plan.formats:
        def plain(d: Path) -> dict:
            shutil.copyfile(d / PLAIN_ONNX, d / onnx)
            return {"optimized": False}

        def optimized(d: Path) -> dict:
            convert.optimize_onnx(d / PLAIN_ONNX, d / onnx, model.config)
            return {"optimized": True}

        def exported(d: Path) -> dict:
            convert.export_onnx(model, tokenizer, d / onnx)
            return {"optimized": False}

        if optimize:
            found.append(Step(onnx, optimized, "optimizing ONNX (fused attention, GELU, layer normalization)",
                              f"{onnx} (optimized graph)", fallback=plain))
        elif Format.OPENVINO in plan.formats:
            found.append(Step(onnx, plain, label=f"{onnx} (plain graph)"))
        else:
            found.append(Step(onnx, exported, "exporting ONNX", f"{onnx} (plain graph)"))
        if Precision.FP16 in plan.precisions and not plan.options.tensorrt:
            onnx_fp16 = MODEL_FILES[Format.ONNX, Precision.FP16]
            found.append(Step(onnx_fp16, lambda d: convert.fp16_onnx(d / onnx, d / onnx_fp16, model.config),
                              "converting to FP16", precision=Precision.FP16, reference=onnx))
        if Precision.INT8 in plan.precisions:
            onnx_int8 = MODEL_FILES[Format.ONNX, Precision.INT8]
            found.append(Step(onnx_int8, lambda d: convert.int8_onnx(d / onnx, d / onnx_int8),
                              "quantizing to INT8", precision=Precision.INT8, reference=onnx))
    if Format.TORCHSCRIPT in plan.formats:
        found.append(Step(traced, lambda d: _trace(model, tokenizer, d / traced), "tracing TorchScript"))
        for precision in (Precision.BF16, Precision.FP16):
            if precision in plan.precisions:  # the same file, cast when it is loaded
                found.append(Step(traced, None, precision=precision, run_in=precision, reference=traced))
    return found


def _trace(model: Any, tokenizer: PreTrainedTokenizerBase, path: Path) -> dict:
    """The TorchScript file, refused if its graph would not run the same everywhere or in every precision."""
    convert.export_torchscript(model, tokenizer, path)
    devices = convert.torchscript_constants(path)
    if devices:
        raise UnsafeGraph(f"{path.name}: the traced graph holds device constants ({', '.join(devices)}): it "
                          "would run part of the model on the tracing device wherever it is loaded")
    overflowing = convert.torchscript_overflowing_constants(path)
    if overflowing:
        raise UnsafeGraph(f"{path.name}: the traced graph holds constants that overflow in BF16 or FP16 "
                          f"({', '.join(map(str, overflowing))}): cast to those precisions it would give NaN")
    return {"device_constants": devices, "overflowing_constants": overflowing}


def _cpu_note(precision: Precision) -> str:
    if precision not in _CPU_DEPENDENT:
        return ""
    flags = ", ".join(sorted(variants.cpu_flags() & _MATRIX_FLAGS)) or "none of AVX2, AVX-512, AMX"
    return f"; {precision.value.upper()} results depend on the CPU's matrix instructions (this one has: {flags})"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class _Prover:
    """Proves each step's file; keeps each reference file's entities, found once."""

    def __init__(self, model: Any, tokenizer: PreTrainedTokenizerBase, tokenizer_dir: Path, min_agreement: float,
                 say: Callable[[str], None]) -> None:
        self.model, self.tokenizer, self.tokenizer_dir = model, tokenizer, tokenizer_dir
        self.min_agreement, self.say = min_agreement, say
        self.references: dict[Path, set] = {}

    def logits(self, path: Path, label: str) -> dict:
        proof = convert.prove_logits(self.model, self.tokenizer, load_runner(path))
        self.say(f"{label}: max |Δ logits| vs PyTorch = {proof.max_abs_diff:.2e} over {proof.batches} batches "
                 f"(tolerance {convert.TOLERANCE:g})")
        if not proof.ok:
            raise LogitsDiffer(path.name, PYTORCH, f"max |Δ logits| {proof.max_abs_diff:.2e}",
                               f"≤ {convert.TOLERANCE:g}")
        return {"max_abs_logit_diff": proof.max_abs_diff, "tolerance": convert.TOLERANCE, "reference": PYTORCH}

    def entities(self, step: Step, path: Path) -> tuple[dict, EntitiesDisagree | None]:
        """The proof's figures, and the error when the entities agree less than the minimum."""
        assert step.reference is not None  # only a step with a reference is proven on entities
        reference = path.with_name(step.reference)
        device = "cuda" if step.run_in is Precision.FP16 and path.suffix == ".pt" and _has_cuda() else "cpu"
        if reference not in self.references:
            self.references[reference] = convert.corpus_entities(reference, self.tokenizer_dir)
        result = convert.entity_agreement(self.references[reference], convert.corpus_entities(
            path, self.tokenizer_dir, step.run_in.value, device), self.min_agreement)
        run_in = step.run_in
        label = path.name if run_in is Precision.FP32 else f"{path.name} in {run_in.value.upper()} on {device}"
        self.say(f"{label}: {result.agreement:.2%} of entities identical to {reference.name} "
                 f"({result.variant_entities} vs {result.reference_entities} entities; minimum "
                 f"{self.min_agreement:.0%})")
        proof = {"entity_agreement": result.agreement, "minimum": self.min_agreement, "device": device,
                 "reference": reference.name, "reference_entities": result.reference_entities,
                 "variant_entities": result.variant_entities}
        if result.ok:
            return proof, None
        return proof, EntitiesDisagree(label, f"the entities of {reference.name}", f"{result.agreement:.2%} identical",
                                       f"≥ {self.min_agreement:.0%}",
                                       _cpu_note(step.precision) if device == "cpu" else "")


def run_steps(steps: list[Step], version_dir: Path, prover: _Prover, keep_going: bool, say: Callable[[str], None]
              ) -> tuple[dict, dict]:
    """Write and prove each step's file into ``version_dir``; return the proofs for the manifest, each with the
    reference it was held against, and the files refused under ``keep_going`` (by proof key, with the error)."""
    proofs: dict[str, dict] = {}
    refused: dict[str, dict] = {}
    for step in steps:
        path = version_dir / step.file
        if step.says:
            say(step.says)
        if step.reference is None:
            assert step.make is not None  # a step proven on logits writes its own file
            try:
                made = step.make(version_dir)
                proof = prover.logits(path, step.label or step.file)
            except Exception as failure:  # noqa: BLE001 - a fallback exists for a failure of any kind
                if step.fallback is None:
                    raise
                say(f"{step.file}: {str(failure).splitlines()[0]}; the plain graph instead")
                made = step.fallback(version_dir)
                proof = prover.logits(path, step.file)
            if not step.intermediate:
                proofs[step.key] = proof | (made if isinstance(made, dict) else {})
            continue
        if step.make is not None:
            step.make(version_dir)
        proof, error = prover.entities(step, path)
        if error is None:
            proofs[step.key] = proof
        elif not keep_going:
            raise error
        else:
            refused[step.key] = proof | {"error": str(error)}
            if step.make is not None:  # a file of its own (a cast TorchScript file is FP32's too)
                path.unlink(missing_ok=True)
                path.with_suffix(".bin").unlink(missing_ok=True)
    for step in steps:
        if step.intermediate:
            (version_dir / step.file).unlink(missing_ok=True)
    return proofs, refused


def export_files(model: Any, tokenizer: PreTrainedTokenizerBase, tokenizer_dir: Path, version_dir: Path,
                 plan: ExportPlan, say: Callable[[str], None]) -> tuple[dict, dict]:
    """Write and prove every model file of ``plan`` (:func:`plan_steps`, :func:`run_steps`)."""
    prover = _Prover(model, tokenizer, tokenizer_dir, plan.min_agreement, say)
    return run_steps(plan_steps(model, tokenizer, plan), version_dir, prover, plan.keep_going, say)

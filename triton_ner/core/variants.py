"""Every way of serving the model step, in one table: the variants, what each runs and what it needs.

The export writes the variants of its formats and precisions (:func:`exported`), ``ner-serve --config-name auto``
picks among those written (:func:`auto`), and the benchmark and the GPU check serve them by these entries. A
variant's configuration is ``ner_model/configs/<config_name>.pbtxt`` (``config.pbtxt`` for the default), chosen at
server start with Triton's ``--model-config-name``. Adding a variant: an entry here, a branch in
:func:`exported`, and its tests.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class Format(str, enum.Enum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    OPENVINO = "openvino"  # OpenVINO IR (model.xml and model.bin), converted from the plain ONNX graph


class Precision(str, enum.Enum):
    """A model file's precision, and the one a runner applies when it loads a file (:attr:`Variant.run_precision`:
    a TorchScript file is cast to it, OpenVINO runs in it)."""

    FP32 = "fp32"
    FP16 = "fp16"  # GPU: ONNX converted to float16 inside (float32 logits out); TorchScript cast at load (cuda)
    BF16 = "bf16"  # CPU (AVX-512 BF16 / AMX): TorchScript cast to bfloat16 at load; OpenVINO run in bfloat16
    INT8 = "int8"  # CPU: ONNX with dynamically quantized weights; OpenVINO IR quantized by NNCF (static, calibrated)

    @property
    def openvino_hint(self) -> str | None:
        """OpenVINO's ``INFERENCE_PRECISION_HINT`` for running in this precision (None: OpenVINO runs in FP32 or
        BF16 only; an INT8 IR carries its quantized layers and runs the rest in FP32)."""
        return _OPENVINO_HINTS.get(self.value)


_OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}


class Target(str, enum.Enum):
    CPU = "cpu"
    GPU = "gpu"
    BOTH = "both"


class Backend(str, enum.Enum):
    """What runs the model step: the project's runner in Triton's Python backend, or one of NVIDIA's backends."""

    PYTHON = "python"  # the project's runner (ONNX Runtime, TorchScript or OpenVINO) in Triton's Python backend
    ONNXRUNTIME = "onnxruntime"  # NVIDIA's
    PYTORCH = "pytorch"  # NVIDIA's (LibTorch)
    OPENVINO = "openvino"  # NVIDIA's, built from r24.10 with the fixes of backends/build-openvino.sh


class Needs(str, enum.Enum):
    """What a machine must have for a variant to be worth serving there (``auto`` asks it)."""

    NOTHING = "nothing"
    CPU_BF16 = "a CPU with native BF16 (AVX-512 BF16 or AMX)"
    CUDA = "an NVIDIA GPU and PyTorch for the Python-backend steps"
    NVIDIA_GPU = "an NVIDIA GPU and NVIDIA's backend in the server"


# Model files inside ner_model/1/. A TorchScript file is FP32 and cast to its precision when loaded; an OpenVINO
# IR (with its .bin beside it) is run in the precision asked for when loaded: the BF16 one keeps its weights in FP16
# (the CPU plugin then holds 310 MB per process instead of 485 for the full-size model, at the same speed).
MODEL_FILES = {
    (Format.ONNX, Precision.FP32): "model.onnx",
    (Format.ONNX, Precision.FP16): "model_fp16.onnx",
    (Format.ONNX, Precision.INT8): "model_int8.onnx",
    (Format.TORCHSCRIPT, Precision.FP32): "model.pt",
    (Format.TORCHSCRIPT, Precision.BF16): "model.pt",
    (Format.TORCHSCRIPT, Precision.FP16): "model.pt",
    (Format.OPENVINO, Precision.FP32): "model.xml",
    (Format.OPENVINO, Precision.BF16): "model_bf16.xml",
    (Format.OPENVINO, Precision.INT8): "model_int8.xml",
}


@dataclass(frozen=True)
class Variant:
    """One way of running the model step: a config name, where and by which backend it runs, which model file."""

    config_name: str  # "" for config.pbtxt
    target: Target
    format: Format
    precision: Precision
    backend: Backend = Backend.PYTHON
    needs: Needs = Needs.NOTHING

    @property
    def model_file(self) -> str:
        return MODEL_FILES[self.format, self.precision]

    @property
    def run_precision(self) -> Precision:
        """The precision the runner applies when it loads the file: a TorchScript model is cast to it, OpenVINO
        runs in BF16 when asked; ONNX files and INT8 IRs carry theirs inside and run as they are."""
        if self.format is Format.TORCHSCRIPT or (self.format is Format.OPENVINO and self.precision is Precision.BF16):
            return self.precision
        return Precision.FP32

    @property
    def label(self) -> str:
        """``config.pbtxt`` or ``configs/<name>.pbtxt``."""
        return f"configs/{self.config_name}.pbtxt" if self.config_name else "config.pbtxt"

    def but(self, **changes: object) -> Variant:
        """This variant with some fields changed (a precision, a config name)."""
        return Variant(**asdict(self) | changes)


def default(format: Format) -> Variant:
    """``config.pbtxt``: the first of the export's formats (ONNX, TorchScript, OpenVINO) in FP32 on CPU."""
    return Variant("", Target.CPU, format, Precision.FP32)


# The entries. The GPU ones of NVIDIA's backends and of the cuda runner take the export's precision.
INT8 = Variant("int8", Target.CPU, Format.ONNX, Precision.INT8)
TORCHSCRIPT = Variant("torchscript", Target.CPU, Format.TORCHSCRIPT, Precision.FP32)
BF16 = Variant("bf16", Target.CPU, Format.TORCHSCRIPT, Precision.BF16, needs=Needs.CPU_BF16)
OPENVINO = Variant("openvino", Target.CPU, Format.OPENVINO, Precision.FP32)
OPENVINO_BF16 = Variant("openvino_bf16", Target.CPU, Format.OPENVINO, Precision.BF16, needs=Needs.CPU_BF16)
OPENVINO_INT8 = Variant("openvino_int8", Target.CPU, Format.OPENVINO, Precision.INT8)
OPENVINO_BF16_BACKEND = Variant("openvino_bf16_backend", Target.CPU, Format.OPENVINO, Precision.BF16,
                                Backend.OPENVINO, Needs.CPU_BF16)
GPU = Variant("gpu", Target.GPU, Format.ONNX, Precision.FP32, Backend.ONNXRUNTIME, Needs.NVIDIA_GPU)
GPU_TORCHSCRIPT = Variant("gpu_torchscript", Target.GPU, Format.TORCHSCRIPT, Precision.FP32, Backend.PYTORCH,
                          Needs.NVIDIA_GPU)
CUDA = Variant("cuda", Target.GPU, Format.TORCHSCRIPT, Precision.FP32, needs=Needs.CUDA)
ENTRIES = (INT8, TORCHSCRIPT, BF16, OPENVINO, OPENVINO_BF16, OPENVINO_INT8, OPENVINO_BF16_BACKEND, GPU,
           GPU_TORCHSCRIPT, CUDA)
CONFIG_NAMES = tuple(v.config_name for v in ENTRIES)
# ``auto``'s choice, the fastest first, among the variants that keep the model's weights (INT8 changes entities by
# design: only when named): the cuda runner on a GPU; OpenVINO on the CPU's BF16 units (in ``make bench`` faster
# than the TorchScript one), then TorchScript in BF16.
AUTO_ORDER = (CUDA, OPENVINO_BF16, BF16)


def exported(formats: set[Format], precisions: set[Precision], target: Target,
             tensorrt: bool = False) -> list[Variant]:
    """The variants an export of ``formats`` and ``precisions`` writes for ``target``; the first is
    ``config.pbtxt``."""
    primary = next(f for f in (Format.ONNX, Format.TORCHSCRIPT, Format.OPENVINO) if f in formats)
    torchscript = Format.TORCHSCRIPT in formats
    found = [default(primary)]
    if target is not Target.GPU:
        if Precision.INT8 in precisions and Format.ONNX in formats:
            found.append(INT8)
        if primary is Format.ONNX and torchscript:
            found.append(TORCHSCRIPT)
        if Precision.BF16 in precisions and torchscript:
            found.append(BF16)
        if Format.OPENVINO in formats:
            if primary is not Format.OPENVINO:
                found.append(OPENVINO)
            found += [v for v in (OPENVINO_BF16, OPENVINO_INT8) if v.precision in precisions]
            if Precision.BF16 in precisions:
                found.append(OPENVINO_BF16_BACKEND)
    if target is not Target.CPU:
        fp16 = Precision.FP16 in precisions
        if primary is Format.ONNX:
            # TensorRT builds its FP16 engines from the plain FP32 graph.
            found.append(GPU.but(precision=Precision.FP16 if fp16 and not tensorrt else Precision.FP32))
        if torchscript:
            # Exported without ONNX, NVIDIA's pytorch backend is the gpu variant.
            found.append(GPU_TORCHSCRIPT if primary is Format.ONNX
                         else GPU_TORCHSCRIPT.but(config_name=GPU.config_name))
            found.append(CUDA.but(precision=Precision.FP16 if fp16 else Precision.FP32))
    return found


def cpu_flags() -> set[str]:
    """The flags of this machine's CPU (``/proc/cpuinfo``; none where it cannot be read)."""
    from pathlib import Path

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def machine_has(needs: Needs, cuda: bool, cpu_flags: set[str]) -> bool:
    """Whether a machine with (``cuda``: PyTorch sees an NVIDIA GPU) and ``cpu_flags`` (``/proc/cpuinfo``) has
    what ``needs`` names; NVIDIA's backends are taken to be in the server wherever there is a GPU."""
    return {Needs.NOTHING: True, Needs.CPU_BF16: bool(cpu_flags & {"avx512_bf16", "amx_bf16"}),
            Needs.CUDA: cuda, Needs.NVIDIA_GPU: cuda}[needs]


def auto(exported_names: set[str], cuda: bool, cpu_flags: set[str]) -> str | None:
    """The config name ``--config-name auto`` serves: the first of :data:`AUTO_ORDER` that the export wrote and the
    machine has what it needs for; ``None`` (``config.pbtxt``) when there is none."""
    return next((v.config_name for v in AUTO_ORDER
                 if v.config_name in exported_names and machine_has(v.needs, cuda, cpu_flags)), None)

"""Run an exported model: ONNX Runtime for ``.onnx`` files, TorchScript for ``.pt`` files, OpenVINO for ``.xml``
files (OpenVINO IR), on a device and in a precision.

Used by the Python-backend model step of the repository and by the in-process reference
(:mod:`triton_ner.core.inprocess`), so both run the same code. ONNX files carry their precision inside
(``model_fp16.onnx``, ``model_int8.onnx``) and run on CPU; a TorchScript file is FP32 and is cast when loaded:
``bf16`` on a CPU with AVX-512 BF16/AMX or a GPU, ``fp16`` on a GPU, on ``cpu`` or ``cuda`` (``cuda:N``). An
OpenVINO IR runs on CPU in the inference precision asked for (``bf16`` on the CPU's BF16 units, else ``fp32``); an
INT8 IR (``model_int8.xml``) carries its quantized layers inside and runs the rest in that precision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from triton_ner.core import names
from triton_ner.core.cuda_graphs import GraphRunner, Shapes
from triton_ner.core.errors import ConfigurationError
from triton_ner.core.variants import Precision

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) -> float32 logits
# What a TorchScript model is cast to when loaded, by precision (torch's names: torch is imported only to run one).
_TORCH_DTYPES = {Precision.FP32: "float32", Precision.BF16: "bfloat16", Precision.FP16: "float16"}


def onnx_runner(path: Path, threads: int = 0) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Threads that wait without spinning: two model-step processes on the same cores then share them (a lone
    # request uses them all) instead of each spinning on the other's.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return session.run([names.LOGITS], {names.INPUT_IDS: input_ids, names.ATTENTION_MASK: attention_mask})[0]

    return run


def torchscript_runner(path: Path, threads: int = 0, device: str = "cpu",
                       precision: Precision = Precision.FP32, shapes: Shapes | None = None) -> Runner:
    """The TorchScript file cast to ``precision`` on ``device``; with ``shapes``, run at those fixed shapes only
    (:class:`~triton_ner.core.cuda_graphs.GraphRunner`: CUDA graphs on a GPU)."""
    import warnings

    import torch

    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, _TORCH_DTYPES[precision])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, yet it is what we serve
        module = torch.jit.load(str(path), map_location=device).eval()
    module.to(dtype)
    if shapes is not None:
        return GraphRunner(module, shapes, device)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids).to(device, non_blocking=True)
            mask = torch.from_numpy(attention_mask).to(device, non_blocking=True)
            return module(ids, mask).float().cpu().numpy()

    return run


# OpenVINO prepares its kernels for each new input shape, at a cost of milliseconds, and keeps them in a cache of
# 5,000 shapes: padding each run's length to a multiple of this keeps the shapes a server sees few, at most 15
# padded tokens per row.
OPENVINO_LENGTH_MULTIPLE = 16


def openvino_runner(path: Path, threads: int = 0, precision: Precision = Precision.FP32) -> Runner:
    """The OpenVINO IR compiled for the CPU in ``precision`` (its hint: without one, OpenVINO picks BF16 by itself
    on a CPU that has it)."""
    import openvino as ov

    properties: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": str(precision.openvino_hint),
                                        "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        properties["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), "CPU", properties)
    request = compiled.create_infer_request()
    logits = compiled.output(names.LOGITS)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        rows, length = input_ids.shape
        padding = -length % OPENVINO_LENGTH_MULTIPLE
        if padding:  # masked positions: the real tokens' logits do not depend on them
            input_ids, attention_mask = (np.pad(a, ((0, 0), (0, padding))) for a in (input_ids, attention_mask))
        result = request.infer({names.INPUT_IDS: input_ids, names.ATTENTION_MASK: attention_mask},
                               share_inputs=True)
        found = result[logits]
        return np.ascontiguousarray(found[:, :length]) if padding else found

    return run


def null_runner(labels: int) -> Runner:
    """Logits of the right shape, all zero, at almost no cost: a model step that computes nothing, with which the
    serving path around it (gRPC, the ensemble, the text step, the model step's glue) is measured alone. A
    measurement tool, not a model to serve: every token gets the first label."""

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.zeros((*input_ids.shape, labels), dtype=np.float32)

    return run


def load_runner(path: str | Path, threads: int = 0, device: str = "cpu",
                precision: Precision | str = Precision.FP32, shapes: Shapes | None = None) -> Runner:
    """A function from token tensors to float32 logits for the model file at ``path``.

    Args:
        path: An exported ``.onnx``, ``.pt`` or ``.xml`` (OpenVINO IR) file.
        threads: Intra-op CPU threads; 0 lets the runtime decide.
        device: ``cpu`` or ``cuda``/``cuda:N`` (TorchScript only).
        precision: ``fp32``, ``bf16`` or ``fp16``: what a TorchScript model is cast to, or the precision OpenVINO
            runs in (``fp32`` or ``bf16``; ONNX files: ``fp32`` only).
        shapes: TorchScript only: pad every call to one of these shapes (CUDA graphs on a GPU).

    Raises:
        ConfigurationError: A file, device, precision or shapes this runner does not take, naming the setting.
    """
    path = Path(path)
    try:
        precision = Precision(precision)
    except ValueError:
        allowed = ", ".join(p.value for p in Precision)
        raise ConfigurationError("precision", f"{precision!r} is not one of {allowed}") from None
    if path.suffix == ".onnx":
        if precision is not Precision.FP32:
            raise ConfigurationError("precision", f"{path.name} runs in the precision it was exported in, fp32 "
                                                  f"here (asked for {precision.value})")
        if device != "cpu":
            raise ConfigurationError("instance_group", f"{path.name} runs on cpu here (asked for {device})")
        return onnx_runner(path, threads)
    if path.suffix == ".pt":
        if precision not in _TORCH_DTYPES:
            allowed = ", ".join(p.value for p in _TORCH_DTYPES)
            raise ConfigurationError("precision", f"a TorchScript model runs in {allowed} (asked for "
                                                  f"{precision.value})")
        return torchscript_runner(path, threads, device, precision, shapes)
    if shapes is not None:
        raise ConfigurationError("max_rows_per_graph", f"fixed shapes are for TorchScript files, not {path.name}")
    if path.suffix == ".xml":
        if precision.openvino_hint is None:
            raise ConfigurationError("precision", f"OpenVINO runs in fp32 or bf16 (asked for {precision.value})")
        if device != "cpu":
            raise ConfigurationError("instance_group", f"OpenVINO runs on cpu here (asked for {device})")
        return openvino_runner(path, threads, precision)
    raise ConfigurationError("model_file", f"{path.name}: unknown model format (expected .onnx, .pt or .xml)")


def warm_up(run: Runner, lengths: tuple[int, ...], token: int, calls: int = 2) -> None:
    """Run one window of each padded length ``calls`` times, so that the first requests after ready find every
    runtime's per-shape work done: ONNX Runtime's and OpenVINO's buffers and kernels, TorchScript's profiling
    runs (two) and CUDA's kernels. ``token``: a token id of the vocabulary; the outputs are not looked at."""
    for length in lengths:
        ids = np.full((1, length), token, dtype=np.int64)
        for _ in range(calls):
            run(ids, np.ones_like(ids))

"""Run an exported model on CPU: ONNX Runtime for ``.onnx`` files, TorchScript for ``.pt`` files.

Used by the CPU model step of the repository and by the in-process reference (:mod:`ner.inprocess`), so both
run the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ner import names

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) -> logits


def onnx_runner(path: Path, threads: int = 0) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return session.run([names.LOGITS], {names.INPUT_IDS: input_ids, names.ATTENTION_MASK: attention_mask})[0]

    return run


def torchscript_runner(path: Path, threads: int = 0) -> Runner:
    import warnings

    import torch

    if threads:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, yet it is what we serve
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()

    return run


def load_runner(path: str | Path, threads: int = 0) -> Runner:
    """A function from token tensors to float32 logits for the model file at ``path``."""
    path = Path(path)
    if path.suffix == ".onnx":
        return onnx_runner(path, threads)
    if path.suffix == ".pt":
        return torchscript_runner(path, threads)
    raise ValueError(f"{path}: unknown model format (expected .onnx or .pt)")

"""PyTorch checkpoint to ONNX, and the proof that ONNX Runtime gives PyTorch's logits."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.source import ExportError
from ner import names

OPSET = 17
TOLERANCE = 1e-4

# Short, several sentences with padding, and a text long enough to fill the 512-token window.
PROOF_TEXTS = (
    "My name is Wolfgang and I live in Berlin",
    "Angela Merkel met Emmanuel Macron in Paris on Monday.",
    "Zürich, Kraków and São Paulo are cities; 🎉 is not.",
    "OK",
    " ".join(["The Olympic committee met in Rio de Janeiro with officials from FIFA and NASA."] * 60),
)


def load_model(path: Path):
    """The checkpoint as an eval-mode PyTorch token classifier (eager attention, exportable)."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        model = AutoModelForTokenClassification.from_pretrained(path, attn_implementation="eager")
    except (OSError, ValueError) as error:
        raise ExportError(f"{path}: cannot load a token-classification model ({str(error).splitlines()[0]})") from None
    return model.eval()


class LogitsOnly(torch.nn.Module):
    """The model with only the logits tensor as output, so the graph has exactly the output ``logits``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model, tokenizer, output: Path) -> Path:
    """Write the model as ONNX (opset 17) with named, dynamic batch and sequence axes."""
    sample = tokenizer(list(PROOF_TEXTS[:2]), padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript-based exporter is deprecated in favour of dynamo, which needs onnxscript; it is still
        # the one that gives a plain, portable graph for this model, and the proof below guards the result.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            # eval(): the exporter puts the wrapper back in its previous mode afterwards, and a fresh module is
            # in training mode, which would switch dropout on in the model the proof then compares with.
            LogitsOnly(model).eval(), (sample["input_ids"], sample["attention_mask"]), str(output),
            input_names=[names.INPUT_IDS, names.ATTENTION_MASK], output_names=[names.LOGITS],
            dynamic_axes={names.INPUT_IDS: axes, names.ATTENTION_MASK: axes, names.LOGITS: axes},
            opset_version=OPSET, dynamo=False,
        )
    return output


@dataclass(frozen=True)
class Proof:
    """The largest logit difference between ONNX Runtime and PyTorch over :data:`PROOF_TEXTS`."""

    max_abs_diff: float
    cases: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


def prove(model, tokenizer, onnx_path: Path) -> Proof:
    """Compare ONNX Runtime with PyTorch one text at a time and all texts in one padded batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batches = [[t] for t in PROOF_TEXTS] + [list(PROOF_TEXTS)]
    worst = 0.0
    for texts in batches:
        enc = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        got = session.run([names.LOGITS], {names.INPUT_IDS: ids, names.ATTENTION_MASK: mask})[0]
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        real = mask.astype(bool)  # padded positions are never read
        worst = max(worst, float(np.abs(got - want)[real].max()))
    return Proof(worst, len(batches))

"""PyTorch checkpoint to ONNX (plain, optimized, FP16, INT8), TorchScript and OpenVINO IR (FP32, INT8), and the
proofs that they compute what PyTorch computes.

FP32 artifacts are proven on logits (max |Δ| against PyTorch). FP16 and INT8 change logits by design, so they
are proven on what users see: the entities (``simple`` aggregation) agree with the FP32 model's on a fixed corpus.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from triton_ner.core import names
from triton_ner.core.runners import Runner
from triton_ner.export import corpus
from triton_ner.export.source import ExportError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

OPSET = 17
TOLERANCE = 1e-4
MIN_AGREEMENT = 0.99

# Short, several sentences with padding, and a text long enough to fill the 512-token window. The tracing
# example is the first two texts; the proof runs every text alone and all of them in one padded batch, so it
# covers batch sizes and lengths other than the example's.
PROOF_TEXTS = (
    "My name is Wolfgang and I live in Berlin",
    "Angela Merkel met Emmanuel Macron in Paris on Monday.",
    "Zürich, Kraków and São Paulo are cities; 🎉 is not.",
    "OK",
    " ".join(["The Olympic committee met in Rio de Janeiro with officials from FIFA and NASA."] * 60),
)


def load_model(path: Path) -> Any:
    """The checkpoint as an eval-mode PyTorch token classifier (eager attention, exportable)."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForTokenClassification.from_pretrained(path, attn_implementation="eager")
    except (OSError, ValueError) as error:
        raise ExportError(f"{path}: cannot load a token-classification model ({str(error).splitlines()[0]})") from None
    return model.eval()


class LogitsOnly(torch.nn.Module):
    """The model with only the logits tensor as output, so the graph has exactly the output ``logits``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


# The additive mask's value at padded positions: exact in FP32, BF16 and FP16 (a power of two far inside FP16's
# range), and still far below any attention score. transformers' own value, the lowest float32, becomes -inf in
# half precision, where CUDA's fuser computes the mask after TorchScript's profiling runs: 0 * -inf is NaN at
# every attended position.
MASKED = -(2.0**14)


class PortableLogits(LogitsOnly):
    """:class:`LogitsOnly` for tracing: no device constant, and a mask that follows the weights' dtype.

    transformers' mask code moves the mask, an ``arange`` and a ``zeros`` to the device of the example, and the
    traced graph keeps that device as a constant: on a GPU the mask would stay on the CPU. Here the additive
    mask is made from the inputs alone and passed on as a 4-D mask, which transformers uses as it is; ``type_as``
    the embedding weights follows the dtype the module is cast to when loaded (BF16, FP16): 0 where attended,
    :data:`MASKED` where padded, which softmax turns into 0 in every dtype. Models that take token types (BERT,
    RoBERTa, XLM-RoBERTa) get them as zeros made from the inputs too: their default is a buffer moved to the
    device of the positions (RoBERTa) or zeros made on the buffer's device, a device constant in the graph. ONNX
    keeps :class:`LogitsOnly`: ONNX Runtime's optimizer fuses attention only on transformers' own mask pattern.
    """

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.token_types = "token_type_ids" in inspect.signature(model.forward).parameters

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = self.model.get_input_embeddings().weight
        padded = 1.0 - attention_mask[:, None, None, :].type_as(weights)
        if self.token_types:
            return self.model(input_ids=input_ids, attention_mask=padded * MASKED,
                              token_type_ids=torch.zeros_like(input_ids)).logits
        return self.model(input_ids=input_ids, attention_mask=padded * MASKED).logits


def _example(tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, torch.Tensor]:
    sample = tokenizer(list(PROOF_TEXTS[:2]), padding=True, return_tensors="pt")
    return sample["input_ids"], sample["attention_mask"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the converters' chatter (deprecations, tracer notes, advice); the proofs judge the result."""
    from transformers.utils import logging as hf_logging

    root, hf_level = logging.getLogger(), hf_logging.get_verbosity()
    level = root.level
    root.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        hf_logging.set_verbosity(hf_level)


def export_onnx(model: Any, tokenizer: PreTrainedTokenizerBase, output: Path) -> Path:
    """Write the model as ONNX (opset 17) with named, dynamic batch and sequence axes."""
    axes = {0: "batch", 1: "sequence"}
    # eval(): the exporter puts the wrapper back in its previous mode afterwards, and a fresh module is in
    # training mode, which would switch dropout on in the model the proof then compares with.
    with _quiet(), torch.no_grad():
        # The TorchScript-based exporter is deprecated in favour of dynamo, which needs onnxscript; it gives a
        # plain, portable graph for this model, and the proof guards the result.
        torch.onnx.export(
            LogitsOnly(model).eval(), _example(tokenizer), str(output),
            input_names=[names.INPUT_IDS, names.ATTENTION_MASK], output_names=[names.LOGITS],
            dynamic_axes={names.INPUT_IDS: axes, names.ATTENTION_MASK: axes, names.LOGITS: axes},
            opset_version=OPSET, dynamo=False,
        )
    return output


def export_torchscript(model: Any, tokenizer: PreTrainedTokenizerBase, output: Path, attention: str = "sdpa"
                       ) -> Path:
    """Trace the model to TorchScript; any batch size and length up to 512 (the proof checks other shapes).

    ``attention``: transformers' attention implementation in the traced graph. ``sdpa`` (PyTorch's
    ``scaled_dot_product_attention``, one call per layer, fused kernels on a GPU) by default; ``eager`` is its
    matrix products and softmax written out. The model is put back to its own afterwards.
    """
    # TorchScript is deprecated in PyTorch in favour of torch.export, but it is what NVIDIA's pytorch backend
    # runs; _quiet() hides the deprecation notices.
    own = model.config._attn_implementation
    with _quiet(), torch.no_grad():
        model.set_attn_implementation(attention)
        try:
            traced = torch.jit.trace(PortableLogits(model).eval(), _example(tokenizer))
        finally:
            model.set_attn_implementation(own)
        torch.jit.save(traced, str(output))
    model.eval()
    return output


def torchscript_attention(path: Path) -> str:
    """``sdpa`` when the traced file calls ``scaled_dot_product_attention``, else ``eager``."""
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    return "sdpa" if "aten::scaled_dot_product_attention" in str(module.inlined_graph) else "eager"


def torchscript_constants(path: Path) -> list[str]:
    """Device constants in the saved module's graph (``prim::Constant[value="cpu"]`` and the like), which would
    pin tensors to the tracing device wherever the file is loaded; a portable file has none."""
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    graph = module.inlined_graph  # kept: its nodes live as long as it does
    return sorted(str(node.output().toIValue()) for node in graph.findAllNodes("prim::Constant")
                  if node.output().type().kind() == "DeviceObjType")


def torchscript_overflowing_constants(path: Path) -> list[float]:
    """Finite float constants (scalars and scalar tensors) in the saved module's graph that become infinite in BF16
    or FP16. The module is cast to those dtypes when loaded, and a fused kernel may compute with the constant in
    them (``0 * -inf`` is NaN); a file that runs in every precision has none."""
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    graph = module.inlined_graph  # kept: its nodes live as long as it does
    values = []
    for node in graph.findAllNodes("prim::Constant"):
        value = node.output().toIValue()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() == 1:
            value = value.item()
        if isinstance(value, float) and math.isfinite(value):
            values.append(value)
    halves = (torch.bfloat16, torch.float16)
    return sorted({value for value in values
                   if not all(torch.tensor(value, dtype=dtype).isfinite() for dtype in halves)})


def torchscript_output_shape(path: Path) -> tuple[int, ...]:
    """The shape of the saved module's logits for one window of four tokens (``(1, 4, labels)``)."""
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu").eval()
    tokens = torch.ones((1, 4), dtype=torch.int64)
    with torch.inference_mode():
        return tuple(module(tokens, tokens).shape)


def torchscript_inputs(path: Path) -> list[str]:
    """The argument names of the saved module's ``forward`` (the signature the configs must match)."""
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")
    return [argument.name for argument in module.forward.schema.arguments[1:]]


def _optimizer_model(source: Path, config: Any) -> Any:
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet():
        return optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                              hidden_size=config.hidden_size)


def optimize_onnx(source: Path, output: Path, config: Any) -> Path:
    """ONNX Runtime's transformer optimizer: fused attention, GELU and layer normalization."""
    _optimizer_model(source, config).save_model_to_file(str(output))
    return output


def fp16_onnx(source: Path, output: Path, config: Any) -> Path:
    """Optimized, then float16 inside with int64 inputs and float32 logits (for GPU)."""
    optimized = _optimizer_model(source, config)
    with _quiet():
        optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(output))
    return output


def int8_onnx(source: Path, output: Path) -> Path:
    """Weights quantized to int8, activations quantized on the fly (dynamic quantization, for CPU)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(output), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return output


def openvino_ir(source: Path, output: Path, fp16_weights: bool = False) -> Path:
    """The plain ONNX graph as OpenVINO IR (``.xml`` and ``.bin``), weights in FP32, or in FP16 for a model run in
    BF16 (the precision OpenVINO runs in is chosen when it is loaded). The plain graph, as OpenVINO's own
    operators fuse it best."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(source)), str(output), compress_to_fp16=fp16_weights)
    return output


CALIBRATION_TEXTS = 300


def calibration_corpus() -> list[str]:
    """The sentences INT8 quantization is calibrated on: the export's generated corpus, other sentences than the
    agreement corpus it is then judged on."""
    return corpus.texts(CALIBRATION_TEXTS, seed=7)


def int8_openvino(source: Path, output: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """The OpenVINO IR quantized by NNCF: weights and activations of the matrix products in INT8, their ranges
    calibrated on :func:`calibration_corpus` (static post-training quantization, transformer preset: SmoothQuant,
    no quantizers where BERT-like models lose accuracy)."""
    import nncf
    import openvino as ov

    def sample(text: str) -> dict[str, np.ndarray]:
        encoded = tokenizer([text], truncation=True, return_tensors="np")
        return {name: encoded[name].astype(np.int64) for name in (names.INPUT_IDS, names.ATTENTION_MASK)}

    samples = [sample(text) for text in calibration_corpus()]
    with _quiet(), _no_progress():
        quantized = nncf.quantize(ov.Core().read_model(str(source)), nncf.Dataset(samples),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples))
    ov.save_model(quantized, str(output), compress_to_fp16=False)
    return output


@contextlib.contextmanager
def _no_progress() -> Iterator[None]:
    """NNCF's log lines and progress bars (rich, on stdout) off: the export prints one line per step."""
    import io

    import nncf

    level = nncf.nncf_logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf.set_log_level(level)


@dataclass(frozen=True)
class LogitProof:
    """The largest logit difference between an artifact and PyTorch over :data:`PROOF_TEXTS`."""

    max_abs_diff: float
    batches: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


def prove_logits(model: Any, tokenizer: PreTrainedTokenizerBase, run: Runner) -> LogitProof:
    """Compare ``run`` with PyTorch on each proof text alone and on all of them in one padded batch."""
    batches = [[t] for t in PROOF_TEXTS] + [list(PROOF_TEXTS)]
    worst = 0.0
    for texts in batches:
        enc = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        got = run(ids, mask)
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        real = mask.astype(bool)  # padded positions are never read
        worst = max(worst, float(np.abs(got - want)[real].max()))
    return LogitProof(worst, len(batches))


def agreement_corpus() -> list[str]:
    """A fixed corpus for precision variants: generated sentences, hard cases and a long document."""
    return corpus.texts(300, seed=2024) + list(PROOF_TEXTS) + [" ".join(corpus.texts(80, seed=99))]


@dataclass(frozen=True)
class EntityAgreement:
    """How many entities (type, start, end) a variant shares with the FP32 model: 2·|A∩B| / (|A|+|B|)."""

    agreement: float
    reference_entities: int
    variant_entities: int
    minimum: float = MIN_AGREEMENT

    @property
    def ok(self) -> bool:
        return self.agreement >= self.minimum


def corpus_entities(model_file: Path, tokenizer_dir: Path, precision: str = "fp32", device: str = "cpu") -> set[tuple]:
    """``(text, type, start, end)`` of every entity the served code path finds in :func:`agreement_corpus`."""
    from triton_ner.core.inprocess import LocalNer

    results = LocalNer(model_file, tokenizer_dir, precision=precision, device=device).predict(agreement_corpus())
    return {(i, e["entity_group"], e["start"], e["end"]) for i, found in enumerate(results) for e in found}


def entity_agreement(reference: set[tuple], variant: set[tuple], minimum: float = MIN_AGREEMENT) -> EntityAgreement:
    """How far the entities of a variant (:func:`corpus_entities`) agree with the FP32 model's."""
    total = len(reference) + len(variant)
    return EntityAgreement(2 * len(reference & variant) / total if total else 1.0, len(reference), len(variant),
                           minimum)

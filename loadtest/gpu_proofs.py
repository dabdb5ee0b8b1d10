"""gpu-check's step 2: the traced model in the cuda variant's runner, each precision on the plan's device, held
against CPU FP32."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from triton_ner.core.cuda_graphs import served_shapes
from triton_ner_loadtest.gpu_plan import Plan, Traced, one_line, release

PRECISIONS = ("fp32", "fp16", "bf16")  # proven


FP32_TOLERANCE = 1e-3


# Entity agreement with CPU FP32 on the agreement corpus. The benchmark model has random weights, so many tokens
# are near-ties between labels that rounding flips; on CPU (torch 2.13) FP16 agreed 99.8% and BF16 (8 bits of
# mantissa) 98.8% over 4,180 entities. The bounds leave room for the GPU's other summation order and still
# catch a broken precision (overflow, NaN, a wrong mask), which agrees on next to nothing.
MIN_AGREEMENT = {"fp16": 0.98, "bf16": 0.95}


@dataclass
class Proof:
    """One proof: a figure, its bound, and whether it must be at least (agreement) or at most (Δ) the bound."""

    # Stable: device_constants, half_constants, fp32_logits_eager, fp32_logits_corpus, fp16_agreement, bf16_agreement.
    key: str
    name: str
    measured: float | None
    bound: float
    at_least: bool
    detail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        if self.error is not None or self.measured is None or not math.isfinite(self.measured):
            return False
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def summary(self) -> dict:
        data = asdict(self) | {"ok": self.ok}
        if self.measured is not None and not math.isfinite(self.measured):
            data["measured"], data["detail"] = None, f"{self.measured} {self.detail}".strip()
        return data


def prove(plan: Plan, traced: Traced, log: Callable[[str], None]) -> tuple[list[Proof], list[dict]]:
    """Step 2: every precision on the plan's device, in the cuda variant's runner (fixed shapes, CUDA graphs on a
    GPU), against CPU FP32; the proofs and each precision's figures."""
    from triton_ner.core.aggregation import aggregate_texts
    from triton_ner.core.model_runs import run_in_groups
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.runners import load_runner
    from triton_ner.core.tokenization import prepare
    from triton_ner.core.vocabulary import load_vocabulary
    from triton_ner.export import convert

    vocab = load_vocabulary(traced.checkpoint)
    texts = convert.agreement_corpus()
    # The served code path, as convert.corpus_entities runs it, with the runner on any device and precision.
    batch = prepare(vocab.tokenizer, texts, RequestOptions(), max_windows=1 << 30)
    real = batch.attention_mask.astype(bool)

    def run_corpus(run: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, set[tuple]]:
        logits = run_in_groups(run, batch.input_ids, batch.attention_mask, 16384)
        found = aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                                batch.text_index, vocab)
        return logits, {(i, e["entity_group"], e["start"], e["end"]) for i, f in enumerate(found) for e in f}

    # A device constant in the traced graph would keep part of the model on the tracing device (CPU) on the GPU.
    constants = convert.torchscript_constants(traced.torchscript)
    overflowing = convert.torchscript_overflowing_constants(traced.torchscript)
    proofs = [Proof("device_constants", "device constants in the traced file", len(constants), 0, False,
                    ", ".join(constants)),
              Proof("half_constants", "constants of the traced file infinite in BF16 or FP16", len(overflowing), 0,
                    False, ", ".join(map(str, overflowing)))]
    reference_logits, reference = run_corpus(load_runner(traced.torchscript, device="cpu"))
    log(f"reference: CPU FP32 runner, {len(texts)} texts, {len(batch.input_ids)} windows, {len(reference)} entities")
    figures: list[dict] = []
    for precision in PRECISIONS:
        where = f"{plan.device} {precision}"
        try:
            run = load_runner(traced.torchscript, device=plan.device, precision=precision, shapes=served_shapes())
            logits, found = run_corpus(run)
            delta = float(np.abs(logits - reference_logits)[real].max())
            agreement = convert.entity_agreement(reference, found, MIN_AGREEMENT.get(precision, 1.0))
            figures.append({"precision": precision, "max_abs_logit_diff": delta,
                            "entity_agreement": agreement.agreement, "reference_entities": len(reference),
                            "variant_entities": len(found)})
            log(f"{where}: max |Δ logits| {delta:.2e}, {agreement.agreement:.2%} of entities identical")
            if precision == "fp32":
                eager = convert.prove_logits(traced.model, traced.tokenizer, run)
                proofs.append(Proof("fp32_logits_eager",
                                    f"{where} logits vs PyTorch CPU fp32 (proof texts, up to 512 tokens): max |Δ|",
                                    eager.max_abs_diff, FP32_TOLERANCE, False, f"{eager.batches} batches"))
                proofs.append(Proof("fp32_logits_corpus", f"{where} logits vs CPU fp32 runner (agreement corpus): "
                                    "max |Δ|", delta, FP32_TOLERANCE, False, f"{len(batch.input_ids)} windows"))
            else:
                proofs.append(Proof(f"{precision}_agreement", f"{where} entities vs CPU fp32 (agreement corpus): "
                                    "agreement", agreement.agreement, agreement.minimum, True,
                                    f"{len(found)} vs {len(reference)} entities; max |Δ logits| {delta:.2e}"))
            del run
        except Exception as error:  # noqa: BLE001 - a failing precision is a failed proof, and the run goes on
            log(f"{where}: {one_line(error)}")
            if precision == "fp32":
                proofs.append(Proof("fp32_logits_eager", f"{where} logits vs CPU fp32: max |Δ|", None,
                                    FP32_TOLERANCE, False, error=one_line(error)))
            else:
                proofs.append(Proof(f"{precision}_agreement", f"{where} entities vs CPU fp32: agreement", None,
                                    MIN_AGREEMENT[precision], True, error=one_line(error)))
        release(plan.device)
    return proofs, figures

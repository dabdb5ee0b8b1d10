"""The served pipeline in one process: the same tokenization, model runner and aggregation, without Triton.

The reference the export compares precision variants with, and the in-process ceiling of the benchmark.
"""

from __future__ import annotations

from pathlib import Path

from triton_ner.core.aggregation import aggregate_texts
from triton_ner.core.batching import MAX_TOKENS_PER_RUN
from triton_ner.core.model_runs import run_in_groups
from triton_ner.core.parameters import RequestOptions, Strategy
from triton_ner.core.runners import load_runner
from triton_ner.core.tokenization import prepare
from triton_ner.core.vocabulary import load_vocabulary


class LocalNer:
    """Entities of texts as the served ensemble computes them.

    Args:
        model_file: An exported ``.onnx`` or ``.pt`` model.
        tokenizer_dir: The folder with the tokenizer files and ``config.json`` (labels).
        threads: Intra-op threads; 0 lets the runtime decide.
        max_tokens_per_run: Padded tokens per model call, as in the served runner.
        precision: What a TorchScript model is cast to (``fp32``, ``bf16``, ``fp16``).
        device: ``cpu`` or ``cuda`` (TorchScript).
    """

    def __init__(self, model_file: str | Path, tokenizer_dir: str | Path, threads: int = 0,
                 max_tokens_per_run: int = MAX_TOKENS_PER_RUN, precision: str = "fp32", device: str = "cpu"):
        self.vocab = load_vocabulary(tokenizer_dir)
        self.run = load_runner(model_file, threads, device, precision)
        self.max_tokens = max_tokens_per_run

    def predict(self, texts: list[str], options: RequestOptions = RequestOptions()) -> list[list[dict]]:
        """One list of entities per text (the pipeline's records, numpy scores included)."""
        batch = prepare(self.vocab.tokenizer, texts, options, max_windows=1 << 30)
        logits = run_in_groups(self.run, batch.input_ids, batch.attention_mask, self.max_tokens)
        return aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                               batch.text_index, self.vocab, Strategy(options.aggregation_strategy),
                               options.ignore_labels)

"""Tokenization of request texts into model inputs, and loading of the checkpoint's text assets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ner.aggregation import Vocabulary


def load_vocabulary(folder: str | Path) -> Vocabulary:
    """The fast tokenizer saved in ``folder`` and the ``id2label`` of the ``config.json`` beside it."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{folder}: a fast (tokenizers-backed) tokenizer is required for character offsets")
    config = json.loads((folder / "config.json").read_text())
    id2label = {int(k): v for k, v in config["id2label"].items()}
    return Vocabulary(tokenizer=tokenizer, id2label=id2label)


@dataclass(frozen=True)
class Batch:
    """Padded model inputs for several texts, one row per text, and what aggregation needs besides logits."""

    input_ids: np.ndarray  # [texts, tokens] int64
    attention_mask: np.ndarray  # [texts, tokens] int64
    offsets: np.ndarray  # [texts, tokens, 2] int64, code-point spans in the original text
    special_tokens_mask: np.ndarray  # [texts, tokens] int64, 1 for [CLS], [SEP] and padding


def encode(tokenizer, texts: list[str]) -> Batch:
    """Tokenize ``texts`` as the pipeline does (truncated at the model's maximum length), padded to the longest."""
    truncation = bool(tokenizer.model_max_length and tokenizer.model_max_length > 0)
    enc = tokenizer(texts, truncation=truncation, padding=True, return_special_tokens_mask=True,
                    return_offsets_mapping=True, return_tensors="np")
    return Batch(
        input_ids=enc["input_ids"].astype(np.int64),
        attention_mask=enc["attention_mask"].astype(np.int64),
        offsets=enc["offset_mapping"].astype(np.int64),
        special_tokens_mask=enc["special_tokens_mask"].astype(np.int64),
    )

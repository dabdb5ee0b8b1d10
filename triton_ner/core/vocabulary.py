"""A checkpoint's tokenizer and labels (:class:`Vocabulary`), loaded from an exported repository, with what
aggregation looks up in them built once (:class:`Lexicon`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from triton_ner.core.errors import ConfigurationError


@dataclass(frozen=True)
class Vocabulary:
    """A tokenizer and the label names: everything aggregation reads besides the arrays."""

    tokenizer: Any
    id2label: dict[int, str]

    @cached_property
    def lexicon(self) -> Lexicon:
        """What aggregation looks up per token and per label, built on first use."""
        return Lexicon(self)

    @property
    def word_aware(self) -> bool:
        """True for tokenizers that mark continuation pieces (WordPiece ``##``), as the pipeline checks."""
        backend = getattr(self.tokenizer, "_tokenizer", None)
        return bool(backend and getattr(backend.model, "continuing_subword_prefix", None))


def load_vocabulary(folder: str | Path) -> Vocabulary:
    """The fast tokenizer saved in ``folder`` and the ``id2label`` of the ``config.json`` beside it.

    Loaded from its ``tokenizer.json`` as transformers' generic fast tokenizer, not through ``AutoTokenizer``,
    whose model configuration classes import PyTorch: a text step then holds about 80 MB instead of 270 MB.
    """
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    if not (folder / "tokenizer.json").exists():
        raise ConfigurationError("tokenizer_dir", f"{folder} holds no tokenizer.json: a fast (tokenizers-backed) "
                                                  "tokenizer is required for character offsets")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    id2label = {int(k): v for k, v in checkpoint_config(folder)["id2label"].items()}
    return Vocabulary(tokenizer=tokenizer, id2label=id2label)


def checkpoint_config(folder: str | Path) -> dict:
    """The checkpoint's ``config.json`` saved beside the tokenizer (labels, ``vocab_size``)."""
    return json.loads((Path(folder) / "config.json").read_text())


class Lexicon:
    """What aggregation looks up per token and per label, built once per vocabulary: token strings, their lengths,
    and each label's BIO prefix, type and group name."""

    def __init__(self, vocab: Vocabulary):
        tokenizer = vocab.tokenizer
        backend = tokenizer.backend_tokenizer
        self.pieces = [backend.id_to_token(i) for i in range(backend.get_vocab_size(with_added_tokens=True))]
        self.piece_lengths = np.array([len(p or "") for p in self.pieces], dtype=np.int64)
        self.unk_id = tokenizer.unk_token_id
        self.word_aware = vocab.word_aware
        decoder = backend.decoder
        decode = decoder.decode if decoder is not None else " ".join  # convert_tokens_to_string

        # The same words and entities come back again and again; the decoder is a call into Rust per entity.
        @lru_cache(maxsize=1 << 16)
        def join(pieces: tuple[str, ...]) -> str:
            return decode(list(pieces))

        self.join = join
        self.labels = [vocab.id2label[i] for i in range(len(vocab.id2label))]
        tags = [_tag(label) for label in self.labels]
        types = {t: k for k, t in enumerate(dict.fromkeys(tag for _, tag in tags))}
        self.opens = np.array([bi == "B" for bi, _ in tags])
        self.types = np.array([types[tag] for _, tag in tags])
        self.groups = [label.split("-", 1)[-1] for label in self.labels]
        self._dropped: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def dropped(self, ignore_labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per label: whether ``ignore_labels`` drops a token record of it, and a group it opens."""
        if ignore_labels not in self._dropped:
            ignored = set(ignore_labels)
            self._dropped[ignore_labels] = (np.array([label in ignored for label in self.labels]),
                                            np.array([group in ignored for group in self.groups]))
        return self._dropped[ignore_labels]


def _tag(label: str) -> tuple[str, str]:
    """The pipeline's ``get_tag``: ``B-X`` is (B, X), ``I-X`` is (I, X), anything else (``O`` too) is (I, label)."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label

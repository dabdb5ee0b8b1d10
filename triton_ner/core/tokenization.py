"""Tokenization of request texts into model windows, and loading of the checkpoint's text assets.

Texts longer than the model's window are never truncated: they are cut into overlapping windows exactly as
``pipeline("ner", stride=...)`` cuts them (the fast tokenizer's ``return_overflowing_tokens``), and
``text_index`` says which text each window belongs to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from triton_ner.core.errors import InvalidInput
from triton_ner.core.parameters import RequestOptions, Strategy

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase
    from transformers import PreTrainedTokenizerFast as FastTokenizer

DEFAULT_STRIDE = 128


@dataclass(frozen=True)
class Batch:
    """Padded model inputs, one row per window, and what aggregation needs besides logits."""

    input_ids: np.ndarray  # [windows, tokens] int64
    attention_mask: np.ndarray  # [windows, tokens] int64
    offsets: np.ndarray  # [windows, tokens, 2] int64, code-point spans in the original text
    special_tokens_mask: np.ndarray  # [windows, tokens] int64, 1 for [CLS], [SEP] and padding
    text_index: np.ndarray  # [windows] int64, the text each window belongs to


def window_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Text tokens per window: the model's maximum length less [CLS] and [SEP]."""
    return tokenizer.model_max_length - tokenizer.num_special_tokens_to_add()


def check_stride(tokenizer: PreTrainedTokenizerBase, stride: int) -> None:
    """Refuse a stride the tokenizer cannot use (it must leave each window at least one new token)."""
    limit = window_tokens(tokenizer)
    if not 0 <= stride < limit:
        raise InvalidInput(f"stride {stride} must be at least 0 and less than {limit} "
                           f"(the model's {tokenizer.model_max_length} tokens less special tokens)")


def window_count(tokens: int, per_window: int, stride: int) -> int:
    """Windows that cover ``tokens`` text tokens, ``per_window`` at a time, overlapping by ``stride``."""
    if tokens <= per_window:
        return 1
    return 1 + math.ceil((tokens - per_window) / (per_window - stride))


def count_windows(tokenizer: FastTokenizer, texts: list[str], stride: int) -> list[int]:
    """Windows per text, without building them (tokenizes ids only)."""
    per_window = window_tokens(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, return_attention_mask=False,
                    verbose=False)["input_ids"]
    return [window_count(len(row), per_window, stride) for row in ids]


def most_windows(tokenizer: FastTokenizer, texts: list[str], stride: int) -> int:
    """An upper bound of the windows of ``texts``, from their lengths alone.

    A WordPiece token covers at least one character; 4 tokens per character also covers byte-fallback
    tokenizers (UTF-8), so the bound holds for any fast tokenizer.
    """
    return sum(window_count(4 * len(text), window_tokens(tokenizer), stride) for text in texts)


@lru_cache(maxsize=16)
def _windowing(tokenizer: FastTokenizer, stride: int) -> Tokenizer:
    """A copy of the tokenizer's Rust tokenizer, configured once per stride as transformers configures it for
    ``tokenizer(texts, truncation=True, stride=stride, return_overflowing_tokens=True, padding=True)``; the
    tokenizer itself is left as it is."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(tokenizer.model_max_length, stride=stride, strategy="longest_first",
                              direction=tokenizer.truncation_side)
    backend.enable_padding(direction=tokenizer.padding_side, pad_id=tokenizer.pad_token_id,
                           pad_type_id=tokenizer.pad_token_type_id, pad_token=tokenizer.pad_token)
    return backend


def encode(tokenizer: FastTokenizer, texts: list[str], stride: int = DEFAULT_STRIDE) -> Batch:
    """Tokenize ``texts`` into windows as the pipeline does with ``stride``, padded to the longest window.

    A text that fits in one window gives exactly the pipeline's tokens without ``stride``. The Rust tokenizer is
    called directly (:func:`_windowing`), and its encodings go straight into arrays: the same windows (a test
    compares them) without transformers' per-window Python dictionaries.
    """
    check_stride(tokenizer, stride)
    windows: list = []
    text_index: list[int] = []
    for k, encoding in enumerate(_windowing(tokenizer, stride).encode_batch(texts, add_special_tokens=True)):
        windows += [encoding, *encoding.overflowing]
        text_index += [k] * (1 + len(encoding.overflowing))
    return Batch(
        input_ids=np.array([w.ids for w in windows], dtype=np.int64),
        attention_mask=np.array([w.attention_mask for w in windows], dtype=np.int64),
        offsets=np.array([w.offsets for w in windows], dtype=np.int64).reshape(len(windows), -1, 2),
        special_tokens_mask=np.array([w.special_tokens_mask for w in windows], dtype=np.int64),
        text_index=np.array(text_index, dtype=np.int64),
    )


def prepare(tokenizer: FastTokenizer, texts: list[str], options: RequestOptions, max_windows: int,
            max_tokens: int | None = None) -> Batch:
    """The windows of one request's texts (:func:`prepare_requests` for one request); raises its refusal."""
    batch = prepare_requests(tokenizer, [(texts, options)], max_windows, max_tokens)[0]
    if isinstance(batch, InvalidInput):
        raise batch
    return batch


def prepare_requests(tokenizer: FastTokenizer, requests: Sequence[tuple[list[str], RequestOptions]],
                     max_windows: int, max_tokens: int | None = None) -> list[Batch | InvalidInput]:
    """One :class:`Batch` of windows per request (one tokenizer call per stride), or the :class:`InvalidInput` it
    is refused with, the others unchanged.

    Refused: no text; a stride the tokenizer cannot use; ``none`` on a text longer than one window (the pipeline
    cannot combine windows then); more windows than ``max_windows`` or more tokens (special tokens and overlaps
    included) than ``max_tokens``, which bound what one request costs while other clients wait.
    """
    results: list[Batch | InvalidInput | None] = [None] * len(requests)
    by_stride: dict[int, list[int]] = {}
    for i, (texts, options) in enumerate(requests):
        try:
            by_stride.setdefault(_admit(tokenizer, texts, options, max_windows), []).append(i)
        except InvalidInput as error:
            results[i] = error
    for stride, members in by_stride.items():
        counts = [len(requests[i][0]) for i in members]
        encoded = encode(tokenizer, [text for i in members for text in requests[i][0]], stride)
        for i, batch in zip(members, split_texts(encoded, counts), strict=True):
            try:
                _check_windows(tokenizer, batch, requests[i][1], max_tokens)
                results[i] = batch
            except InvalidInput as error:
                results[i] = error
    found = [r for r in results if r is not None]
    assert len(found) == len(requests)  # each request got its windows or its refusal
    return found


def split_texts(batch: Batch, counts: list[int]) -> list[Batch]:
    """Cut a :class:`Batch` of consecutive groups of ``counts`` texts into one batch per group, each padded to its
    own longest window and with its own ``text_index`` from 0."""
    bounds = np.cumsum([0, *counts])
    rows = np.searchsorted(batch.text_index, bounds)  # windows of a text are consecutive, texts in order
    parts = []
    for k in range(len(counts)):
        window = slice(rows[k], rows[k + 1])
        width = int(batch.attention_mask[window].sum(axis=1).max())
        parts.append(Batch(
            input_ids=batch.input_ids[window, :width], attention_mask=batch.attention_mask[window, :width],
            offsets=batch.offsets[window, :width], special_tokens_mask=batch.special_tokens_mask[window, :width],
            text_index=batch.text_index[window] - bounds[k]))
    return parts


def _admit(tokenizer: FastTokenizer, texts: list[str], options: RequestOptions, max_windows: int) -> int:
    """The request's stride, after refusing what can be refused before tokenizing."""
    if not texts:
        raise InvalidInput("TEXT is empty: send at least one text")
    stride = DEFAULT_STRIDE if options.stride is None else options.stride
    check_stride(tokenizer, stride)
    # Refuse a request that needs too many windows before building them (a 1 MB text with a large stride would
    # be hundreds of thousands); count exactly only when the cheap bound says it might.
    if most_windows(tokenizer, texts, stride) > max_windows:
        needed = sum(count_windows(tokenizer, texts, stride))
        if needed > max_windows:
            raise InvalidInput(f"the texts need {needed} windows of {tokenizer.model_max_length} tokens; the most "
                               f"per request is {max_windows}: send fewer or shorter texts, or a smaller stride")
    return stride


def _check_windows(tokenizer: FastTokenizer, batch: Batch, options: RequestOptions,
                   max_tokens: int | None) -> None:
    """Refuse a request whose windows cost more tokens than allowed, or that ``none`` cannot answer."""
    tokens = int(batch.attention_mask.sum())
    if max_tokens is not None and tokens > max_tokens:
        raise InvalidInput(f"the texts need {tokens:,} tokens in {len(batch.text_index)} windows; the most per "
                           f"request is {max_tokens:,} tokens: send fewer or shorter texts, in several requests")
    if options.aggregation_strategy is Strategy.NONE:
        long = np.flatnonzero(np.bincount(batch.text_index) > 1)
        if len(long):
            raise InvalidInput(f"TEXT[{long[0]}] is longer than the model's {tokenizer.model_max_length} tokens "
                               "and aggregation_strategy 'none' cannot combine windows (as in the pipeline): "
                               "choose simple, first, average or max")

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
    per_window = window_tokens(tokenizer)
    return sum(window_count(4 * len(text), per_window, stride) for text in texts)


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


@dataclass(frozen=True)
class Pool:
    """The windows of many requests' texts in one :class:`Batch`, the requests one after another: what the text step
    hands the model step and aggregation at once. ``batch.text_index`` counts the texts of all of them."""

    batch: Batch
    texts: list[str]
    requests: list[int]  # the pooled requests, as indices of the list prepared, in the pool's order
    window_request: np.ndarray  # [windows] each window's request, as a position in ``requests``
    first_text: np.ndarray  # [len(requests) + 1] where each request's texts start in ``texts``

    def only(self, kept: list[int]) -> Pool:
        """The pool of the requests at positions ``kept`` (in order), at the same width."""
        if kept == list(range(len(self.requests))):
            return self
        rows = np.isin(self.window_request, kept)
        counts = np.diff(self.first_text)[kept]
        old_first = self.first_text[kept]
        new_first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        position = np.full(len(self.requests), -1)
        position[kept] = np.arange(len(kept))
        owners = self.window_request[rows]
        b = self.batch
        return Pool(Batch(b.input_ids[rows], b.attention_mask[rows], b.offsets[rows], b.special_tokens_mask[rows],
                          b.text_index[rows] - old_first[position[owners]] + new_first[position[owners]]),
                    [t for k in kept for t in self.texts[self.first_text[k]:self.first_text[k + 1]]],
                    [self.requests[k] for k in kept], position[owners], new_first)

    def request_batch(self, k: int) -> Batch:
        """The windows of the request at position ``k`` alone, padded to its own longest window, as
        :func:`encode` gives them for its texts."""
        rows = np.flatnonzero(self.window_request == k)
        b = self.batch
        width = int(b.attention_mask[rows].sum(axis=1).max())
        return Batch(b.input_ids[rows, :width], b.attention_mask[rows, :width], b.offsets[rows, :width],
                     b.special_tokens_mask[rows, :width], b.text_index[rows] - self.first_text[k])


def prepare(tokenizer: FastTokenizer, texts: list[str], options: RequestOptions, max_windows: int,
            max_tokens: int | None = None) -> Batch:
    """The windows of one request's texts (:func:`prepare_pool` of one request); raises its refusal."""
    batch = prepare_requests(tokenizer, [(texts, options)], max_windows, max_tokens)[0]
    if isinstance(batch, InvalidInput):
        raise batch
    return batch


def prepare_requests(tokenizer: FastTokenizer, requests: Sequence[tuple[list[str], RequestOptions]],
                     max_windows: int, max_tokens: int | None = None) -> list[Batch | InvalidInput]:
    """One :class:`Batch` of windows per request (:func:`prepare_pool`, cut per request), or its refusal."""
    pool, refused = prepare_pool(tokenizer, requests, max_windows, max_tokens)
    found: list[Batch | InvalidInput] = [refused[i] if i in refused else pool.request_batch(pool.requests.index(i))
                                         for i in range(len(requests))]
    return found


def prepare_pool(tokenizer: FastTokenizer, requests: Sequence[tuple[list[str], RequestOptions]],
                 max_windows: int, max_tokens: int | None = None) -> tuple[Pool, dict[int, InvalidInput]]:
    """The windows of all requests in one :class:`Pool` (one tokenizer call per stride), and the
    :class:`InvalidInput` each refused request is refused with (by its index), the others unchanged.

    Refused: no text; a stride the tokenizer cannot use; ``none`` on a text longer than one window (the pipeline
    cannot combine windows then); more windows than ``max_windows`` or more tokens (special tokens and overlaps
    included) than ``max_tokens``, which bound what one request costs while other clients wait.
    """
    refused: dict[int, InvalidInput] = {}
    by_stride: dict[int, list[int]] = {}
    for i, (texts, options) in enumerate(requests):
        try:
            by_stride.setdefault(_admit(tokenizer, texts, options, max_windows), []).append(i)
        except InvalidInput as error:
            refused[i] = error
    pools = [_encode_pool(tokenizer, [requests[i][0] for i in members], members, stride)
             for stride, members in by_stride.items()]
    pool = pools[0] if len(pools) == 1 else _joined(pools, tokenizer.pad_token_id)
    tokens = np.bincount(pool.window_request, pool.batch.attention_mask.sum(axis=1), len(pool.requests))
    windows = np.bincount(pool.window_request, minlength=len(pool.requests))
    per_text = np.bincount(pool.batch.text_index, minlength=len(pool.texts))
    kept = []
    for k, i in enumerate(pool.requests):
        if max_tokens is not None and tokens[k] > max_tokens:
            refused[i] = InvalidInput(f"the texts need {int(tokens[k]):,} tokens in {windows[k]} windows; the most "
                                      f"per request is {max_tokens:,} tokens: send fewer or shorter texts, in "
                                      "several requests")
        elif requests[i][1].aggregation_strategy is Strategy.NONE and (
                long := np.flatnonzero(per_text[pool.first_text[k]:pool.first_text[k + 1]] > 1)).size:
            refused[i] = InvalidInput(f"TEXT[{long[0]}] is longer than the model's {tokenizer.model_max_length} "
                                      "tokens and aggregation_strategy 'none' cannot combine windows (as in the "
                                      "pipeline): choose simple, first, average or max")
        else:
            kept.append(k)
    return pool.only(kept), refused


def _encode_pool(tokenizer: FastTokenizer, texts: list[list[str]], requests: list[int], stride: int) -> Pool:
    """The :class:`Pool` of requests of one stride: their texts encoded in one call."""
    counts = [len(t) for t in texts]
    first_text = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    batch = encode(tokenizer, [text for group in texts for text in group], stride)
    text_request = np.repeat(np.arange(len(texts)), counts)
    return Pool(batch, [text for group in texts for text in group], requests, text_request[batch.text_index],
                first_text)


def _joined(pools: list[Pool], pad_id: int) -> Pool:
    """Pools of several strides (or none) as one, at the widest width."""
    if not pools:
        empty = np.zeros((0, 0), dtype=np.int64)
        return Pool(Batch(empty, empty, np.zeros((0, 0, 2), dtype=np.int64), empty, np.zeros(0, np.int64)), [], [],
                    np.zeros(0, np.int64), np.zeros(1, np.int64))
    width = max(p.batch.input_ids.shape[1] for p in pools)

    def padded(field: str, value: int) -> np.ndarray:
        arrays = [getattr(p.batch, field) for p in pools]
        return np.concatenate([np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2),
                                      constant_values=value) for a in arrays])

    texts_before = np.cumsum([0] + [len(p.texts) for p in pools])
    requests_before = np.cumsum([0] + [len(p.requests) for p in pools])
    return Pool(Batch(padded("input_ids", pad_id), padded("attention_mask", 0), padded("offsets", 0),
                      padded("special_tokens_mask", 1),
                      np.concatenate([p.batch.text_index + n for p, n in zip(pools, texts_before, strict=False)])),
                [t for p in pools for t in p.texts], [i for p in pools for i in p.requests],
                np.concatenate([p.window_request + n for p, n in zip(pools, requests_before, strict=False)]),
                np.concatenate([[0]] + [p.first_text[1:] + n for p, n in zip(pools, texts_before, strict=False)]))


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

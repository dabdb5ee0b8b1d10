"""BIO aggregation: logits of tokenized texts to the entities ``transformers.pipeline("ner")`` returns.

Plain functions over numpy arrays and strings, so the Triton aggregation model, the benchmark and the tests
run the same code. The semantics follow ``transformers/pipelines/token_classification.py`` step by step
(its ``aggregate`` and ``group_entities``), but over arrays: the tokens of every window of every request are
pooled, and the per-token work (softmax, argmax, sub-word marks, word and group boundaries, what
``ignore_labels`` drops) is numpy over all of them at once; Python runs once per entity returned, for its record
and its ``word``. Where the pipeline's numpy calls decide float32 rounding (a group's mean score, a word's
average), the same calls are made on the same values.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from triton_ner.core.parameters import Strategy
from triton_ner.core.vocabulary import Lexicon, Vocabulary

orjson: types.ModuleType | None
try:
    import orjson
except ImportError:  # the steps' other dependencies alone (a bare GPU host): the standard library's json, slower
    orjson = None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 after subtracting the row maximum, as the pipeline computes it."""
    if logits.dtype == np.float16:
        logits = logits.astype(np.float32)
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted = np.exp(logits - maxes)
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Windows:
    """What aggregation needs of one request: its texts, options and windows (as :func:`aggregate_texts` takes)."""

    texts: list[str]
    input_ids: np.ndarray
    offsets: np.ndarray
    special_tokens_mask: np.ndarray
    logits: np.ndarray
    text_index: np.ndarray
    strategy: Strategy = Strategy.SIMPLE
    ignore_labels: tuple[str, ...] = ("O",)


@dataclass(frozen=True)
class Pooled:
    """The windows of many requests at once, rows of one width, the requests one after another: what the text step
    aggregates in one go."""

    texts: list[str]  # the texts of all requests
    input_ids: np.ndarray  # [windows, tokens]
    offsets: np.ndarray  # [windows, tokens, 2]
    special_tokens_mask: np.ndarray  # [windows, tokens], 1 for special tokens and padding
    logits: np.ndarray  # [windows, tokens, labels]
    text_index: np.ndarray  # [windows] each window's text, in ``texts``
    window_request: np.ndarray  # [windows] each window's request, a position in ``options``
    first_text: np.ndarray  # [requests + 1] where each request's texts start in ``texts``
    options: list[tuple[Strategy | str, tuple[str, ...]]]  # each request's strategy and ignore_labels


def pooled(requests: Sequence[Windows]) -> Pooled:
    """:class:`Windows` of several requests as one :class:`Pooled`, padded to the widest."""
    width = max(r.input_ids.shape[1] for r in requests)

    def stacked(field: str, value: float) -> np.ndarray:
        arrays = [getattr(r, field) for r in requests]
        return np.concatenate([np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2),
                                      constant_values=value) for a in arrays])

    first_text = np.cumsum([0] + [len(r.texts) for r in requests])
    return Pooled([t for r in requests for t in r.texts], stacked("input_ids", 0), stacked("offsets", 0),
                  stacked("special_tokens_mask", 1), stacked("logits", 0.0),
                  np.concatenate([r.text_index + n for r, n in zip(requests, first_text, strict=False)]),
                  np.repeat(np.arange(len(requests)), [len(r.text_index) for r in requests]), first_text,
                  [(r.strategy, tuple(r.ignore_labels)) for r in requests])


def _ends(first: np.ndarray, count: int) -> np.ndarray:
    """Where each run that starts at ``first`` ends (exclusive), the last one at ``count``."""
    last = np.empty_like(first)
    last[:-1] = first[1:]
    last[-1:] = count
    return last


def _group_scores(scores: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Each group's score, ``np.mean(np.nanmean(scores[first:last]))`` as the pipeline computes it, to the bit.

    numpy sums a float32 run of fewer than 8 values one after another (pairwise summation starts at 8), so those
    runs are summed column by column here, all groups at once; longer runs, and runs with a NaN (which nanmean
    leaves out), take numpy's own call. The mean is then the float32 sum divided by the count in float64.
    """
    lengths = last - first
    columns = np.arange(7)
    padded = np.where(columns < lengths[:, None], scores[np.minimum(first[:, None] + columns, len(scores) - 1)],
                      np.float32(0))
    total = padded[:, 0].copy()
    for j in columns[1:]:
        total += padded[:, j]
    means = (total.astype(np.float64) / lengths).astype(np.float32)
    for k in np.flatnonzero((lengths >= 8) | np.isnan(total)).tolist():
        run = scores[first[k]:last[k]]
        means[k] = np.mean(np.nanmean(run) if np.isnan(run).any() else np.mean(run))
    return means


class _Tokens:
    """The non-special tokens of a :class:`Pooled` (of those of its windows in ``rows``), in window order, with
    what aggregation reads."""

    def __init__(self, pool: Pooled, rows: np.ndarray | None, lex: Lexicon):
        window, self.index = np.nonzero(pool.special_tokens_mask == 0)
        if rows is not None:
            chosen = rows[window]
            window, self.index = window[chosen], self.index[chosen]
        ids, offsets = pool.input_ids[window, self.index], pool.offsets[window, self.index]
        self.scores = softmax(pool.logits[window, self.index])
        self.texts, self.window_request, self.window_text = pool.texts, pool.window_request, pool.text_index
        self.window, self.ids = window, ids
        self.start, self.end = offsets[:, 0], offsets[:, 1]
        self.best = self.scores.argmax(axis=1)
        self.top = self.scores[np.arange(len(ids)), self.best]
        self.unknown = ids == lex.unk_id
        self.opens_window = np.r_[True, window[1:] != window[:-1]] if len(ids) else np.zeros(0, bool)
        self.lex = lex

    def text_of(self, token: int) -> str:
        return self.texts[self.window_text[self.window[token]]]

    @cached_property
    def pieces(self) -> list[str]:
        """Each token's string: the vocabulary's, or for ``[UNK]`` the text it covers (as the pipeline does)."""
        pieces = [self.lex.pieces[i] for i in self.ids.tolist()]
        for token in np.flatnonzero(self.unknown).tolist():
            pieces[token] = self.text_of(token)[self.start[token]:self.end[token]]
        return pieces

    @cached_property
    def subword(self) -> np.ndarray:
        """The pipeline's ``is_subword`` of each token."""
        if self.lex.word_aware:
            lengths = np.array([len(t) for t in self.texts])[self.window_text[self.window]]
            covered = np.clip(self.end, 0, lengths) - np.clip(self.start, 0, lengths)
            return (self.lex.piece_lengths[self.ids] != np.maximum(covered, 0)) & ~self.unknown
        # Tokenizers without sub-word marks: the pipeline's heuristic, a token not after a space.
        return np.array([s > 0 and " " not in self.text_of(i)[s - 1:s + 1] and not self.unknown[i]
                         for i, s in enumerate(self.start.tolist())], dtype=bool)


class _Items:
    """What grouping joins: the tokens themselves (``simple``) or the words they make (``first``, ``average``,
    ``max``), as arrays of label, score, span and window, and each one's ``word`` on demand."""

    def __init__(self, tokens: _Tokens, strategy: Strategy):
        self.tokens = tokens
        self.tokens_are_items = strategy is Strategy.SIMPLE
        if self.tokens_are_items:
            self.first = np.arange(len(tokens.ids))
            self.last = self.first + 1
            self.label, self.score = tokens.best, tokens.top
        else:
            self.first = np.flatnonzero(tokens.opens_window | ~tokens.subword)
            self.last = _ends(self.first, len(tokens.ids))
            self.label, self.score = self._words(strategy)
        self.start = tokens.start[self.first]
        self.end = tokens.end[self.last - 1]
        self.window = tokens.window[self.first]

    def _words(self, strategy: Strategy) -> tuple[np.ndarray, np.ndarray]:
        """Each word's label and score: its first token's (``first``); its most confident token's (``max``); the
        argmax of its tokens' mean probabilities (``average``)."""
        t = self.tokens
        label, score = t.best[self.first].copy(), t.top[self.first].copy()
        if strategy is Strategy.FIRST:
            return label, score
        for k in np.flatnonzero(self.last - self.first > 1).tolist():
            s, e = int(self.first[k]), int(self.last[k])
            if strategy is Strategy.MAX:
                chosen = max(range(s, e), key=lambda i: t.scores[i].max())
                label[k], score[k] = t.best[chosen], t.top[chosen]
            else:
                mean = np.nanmean(t.scores[s:e], axis=0)
                label[k] = mean.argmax()
                score[k] = mean[label[k]]
        return label, score

    @cached_property
    def _bounds(self) -> tuple[list[int], list[int]]:
        return self.first.tolist(), self.last.tolist()

    def word(self, item: int) -> str:
        """The item's ``word``: a token's string, or a word's tokens joined (``convert_tokens_to_string``)."""
        t = self.tokens
        if self.tokens_are_items:
            return t.pieces[item]
        first, last = self._bounds
        return t.lex.join(tuple(t.pieces[first[item]:last[item]]))

    def words_of(self, first: int, last: int) -> tuple[str, ...]:
        """The ``word`` of items ``first`` to ``last - 1``."""
        if self.tokens_are_items:
            return tuple(self.tokens.pieces[first:last])
        return tuple(self.word(i) for i in range(first, last))


def _token_records(tokens: _Tokens, ignore_labels: list[tuple[str, ...]]) -> list[tuple[int, dict]]:
    """``none``: one record per token that ``ignore_labels`` (each request's) keeps, with the text it belongs to."""
    lex = tokens.lex
    drop = np.stack([lex.dropped(ignored)[0] for ignored in ignore_labels])
    kept = np.flatnonzero(~drop[tokens.window_request[tokens.window], tokens.best])
    pieces = tokens.pieces
    return [(text, {"entity": lex.labels[label], "score": score, "index": index, "word": pieces[i], "start": start,
                    "end": end})
            for i, text, label, score, index, start, end in zip(
                kept.tolist(), tokens.window_text[tokens.window[kept]].tolist(), tokens.best[kept].tolist(),
                tokens.top[kept], tokens.index[kept].tolist(), tokens.start[kept].tolist(),
                tokens.end[kept].tolist(), strict=True)]


def _group_records(items: _Items, ignore_labels: list[tuple[str, ...]]) -> list[tuple[int, dict]]:
    """Items joined into entity groups (a ``B-`` item or another type opens a new one, as does a new window),
    each group that ``ignore_labels`` keeps as a record, with the text it belongs to."""
    tokens, lex = items.tokens, items.tokens.lex
    types = lex.types[items.label]
    opens = np.r_[True, (items.window[1:] != items.window[:-1]) | (types[1:] != types[:-1])] | lex.opens[items.label]
    first = np.flatnonzero(opens)
    last = _ends(first, len(items.label))
    drop = np.stack([lex.dropped(ignored)[1] for ignored in ignore_labels])
    kept = np.flatnonzero(~drop[tokens.window_request[items.window[first]], items.label[first]])
    first, last = first[kept], last[kept]
    scores = _group_scores(items.score, first, last)
    # Python lists gathered at once: indexing numpy arrays element by element costs more than the records.
    return [(text, {"entity_group": lex.groups[label], "score": score, "word": lex.join(items.words_of(s, e)),
                    "start": start, "end": end})
            for s, e, text, label, score, start, end in zip(
                first.tolist(), last.tolist(), tokens.window_text[items.window[first]].tolist(),
                items.label[first].tolist(), scores, items.start[first].tolist(), items.end[last - 1].tolist(),
                strict=True)]


def resolve_overlaps(entities: list[dict]) -> list[dict]:
    """Merge the entities of overlapping windows: on overlap keep the longer one, then the higher score."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    kept = []
    previous = entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            kept.append(previous)
            previous = entity
    kept.append(previous)
    return kept


def aggregate_requests(requests: Sequence[Windows], vocab: Vocabulary) -> list[list[list[dict]]]:
    """Entities of every text of many requests, each request with its own strategy and ``ignore_labels``
    (:func:`aggregate_pooled` of them pooled).

    Returns:
        Per request, per text, the pipeline's records (numpy scores included, see :func:`to_python`).
    """
    return aggregate_pooled(pooled(requests), vocab) if requests else []


def aggregate_pooled(pool: Pooled, vocab: Vocabulary, members: list[int] | None = None) -> list[list[list[dict]]]:
    """Entities of every text of the requests ``members`` of ``pool`` (all when None): the array work once per
    strategy present, over the tokens of all of them.

    Returns:
        Per member, per text, the pipeline's records (numpy scores included, see :func:`to_python`).
    """
    members = list(range(len(pool.options))) if members is None else members
    strategies = {k: Strategy(pool.options[k][0]) for k in members}
    ignore_labels = [ignored for _, ignored in pool.options]
    lex = vocab.lexicon
    per_text: list[list[dict]] = [[] for _ in pool.texts]
    for strategy in dict.fromkeys(strategies.values()):
        chosen = [k for k in members if strategies[k] is strategy]
        rows = None if len(chosen) == len(pool.options) else np.isin(pool.window_request, chosen)
        tokens = _Tokens(pool, rows, lex)
        if not len(tokens.ids):
            continue
        records = (_token_records(tokens, ignore_labels) if strategy is Strategy.NONE
                   else _group_records(_Items(tokens, strategy), ignore_labels))
        for text, record in records:
            per_text[text].append(record)
    for text in np.flatnonzero(np.bincount(pool.text_index, minlength=len(pool.texts)) > 1).tolist():
        per_text[text] = resolve_overlaps(per_text[text])
    return [per_text[pool.first_text[k]:pool.first_text[k + 1]] for k in members]


def aggregate_texts(texts: Sequence[str], input_ids: np.ndarray, offsets: np.ndarray,
                    special_tokens_mask: np.ndarray, logits: np.ndarray, text_index: np.ndarray,
                    vocab: Vocabulary, strategy: Strategy = Strategy.SIMPLE,
                    ignore_labels: Iterable[str] = ("O",)) -> list[list[dict]]:
    """Entities of every text of one request from its windows; ``text_index[w]`` is the text of window ``w``.

    Args:
        texts: The original texts; ``offsets`` index into them (code points).
        input_ids: ``[windows, tokens]`` token ids, padding allowed where ``special_tokens_mask`` is 1.
        offsets: ``[windows, tokens, 2]`` character spans of the tokens.
        special_tokens_mask: ``[windows, tokens]`` 1 for [CLS], [SEP] and padding.
        logits: ``[windows, tokens, labels]`` the model's output.
        text_index: ``[windows]`` the text of each window.
        vocab: Tokenizer and labels of the checkpoint.
        strategy: The pipeline's ``aggregation_strategy``.
        ignore_labels: Labels (or entity groups) left out of the result.
    """
    return aggregate_requests([Windows(list(texts), input_ids, offsets, special_tokens_mask, logits, text_index,
                                       Strategy(strategy), tuple(ignore_labels))], vocab)[0]


def to_python(entities: list[dict]) -> list[dict]:
    """The records with plain Python numbers, ready for JSON."""
    return [{k: float(v) if k == "score" else v for k, v in e.items()} for e in entities]


def to_json(entities: list[dict]) -> bytes:
    """One text's records as UTF-8 JSON, scores as the float64 of the float32 the pipeline returns."""
    if orjson is not None:
        return orjson.dumps(entities, default=float)
    return json.dumps(to_python(entities), ensure_ascii=False).encode()

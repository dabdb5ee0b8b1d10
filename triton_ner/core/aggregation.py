"""BIO aggregation: logits of one tokenized text to the entities ``transformers.pipeline("ner")`` returns.

Plain functions over numpy arrays and strings, so the Triton aggregation model, the benchmark and the tests
run the same code. The semantics follow ``transformers/pipelines/token_classification.py`` step by step
(see shared/AGGREGATION.md); where the pipeline's numpy calls decide float32 rounding, the same calls are
used here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from triton_ner.core.parameters import Strategy
from triton_ner.core.tokenization import Vocabulary


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 after subtracting the row maximum, as the pipeline computes it."""
    if logits.dtype == np.float16:
        logits = logits.astype(np.float32)
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted = np.exp(logits - maxes)
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _pre_entities(text: str, input_ids: np.ndarray, scores: np.ndarray, offsets: np.ndarray,
                  special_tokens_mask: np.ndarray, vocab: Vocabulary) -> list[dict]:
    tokenizer = vocab.tokenizer
    word_aware = vocab.word_aware
    keep = np.flatnonzero(special_tokens_mask == 0)
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in input_ids[keep]])
    records = []
    for idx, word in zip(keep.tolist(), tokens):
        start, end = int(offsets[idx, 0]), int(offsets[idx, 1])
        word_ref = text[start:end]
        if word_aware:
            is_subword = len(word) != len(word_ref)
        else:
            is_subword = start > 0 and " " not in text[start - 1:start + 1]
        if int(input_ids[idx]) == tokenizer.unk_token_id:
            word = word_ref
            is_subword = False
        records.append({"word": word, "scores": scores[idx], "start": start, "end": end, "index": idx,
                        "is_subword": is_subword})
    return records


def _aggregate_word(records: list[dict], strategy: Strategy, vocab: Vocabulary) -> dict:
    word = vocab.tokenizer.convert_tokens_to_string([r["word"] for r in records])
    if strategy is Strategy.FIRST:
        scores = records[0]["scores"]
    elif strategy is Strategy.MAX:
        scores = max(records, key=lambda r: r["scores"].max())["scores"]
    else:
        scores = np.nanmean(np.stack([r["scores"] for r in records]), axis=0)
    idx = scores.argmax()
    return {"entity": vocab.id2label[int(idx)], "score": scores[idx], "word": word,
            "start": records[0]["start"], "end": records[-1]["end"]}


def _aggregate_words(records: list[dict], strategy: Strategy, vocab: Vocabulary) -> list[dict]:
    words: list[dict] = []
    group: list[dict] = []
    for record in records:
        if group and not record["is_subword"]:
            words.append(_aggregate_word(group, strategy, vocab))
            group = []
        group.append(record)
    if group:
        words.append(_aggregate_word(group, strategy, vocab))
    return words


def _tag(label: str) -> tuple[str, str]:
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def _group_score(scores: list[np.floating]) -> np.floating:
    """``np.mean(np.nanmean(scores))``, as the pipeline computes a group's score, without nanmean's cost where
    there is no NaN to leave out (the same float32 sum and division then)."""
    if len(scores) == 1 and not np.isnan(scores[0]):
        return scores[0]
    values = np.array(scores)
    return np.mean(np.nanmean(values) if np.isnan(values).any() else np.mean(values))


def _group(items: list[dict], vocab: Vocabulary) -> dict:
    return {
        "entity_group": items[0]["entity"].split("-", 1)[-1],
        "score": _group_score([item["score"] for item in items]),
        "word": vocab.tokenizer.convert_tokens_to_string([item["word"] for item in items]),
        "start": items[0]["start"],
        "end": items[-1]["end"],
    }


def group_entities(items: list[dict], vocab: Vocabulary) -> list[dict]:
    """Join adjacent items of the same type into entity groups; a ``B-`` item always opens a new one."""
    groups: list[dict] = []
    current: list[dict] = []
    for item in items:
        if current:
            bi, tag = _tag(item["entity"])
            if not (tag == _tag(current[-1]["entity"])[1] and bi != "B"):
                groups.append(_group(current, vocab))
                current = []
        current.append(item)
    if current:
        groups.append(_group(current, vocab))
    return groups


def aggregate_window(text: str, input_ids: np.ndarray, offsets: np.ndarray, special_tokens_mask: np.ndarray,
                     scores: np.ndarray, vocab: Vocabulary, strategy: Strategy = Strategy.SIMPLE,
                     ignore_labels: Iterable[str] = ("O",)) -> list[dict]:
    """Entities of one tokenized window of ``text``, before overlapping windows are reconciled.

    Args:
        text: The original text; ``offsets`` index into it (code points).
        input_ids: ``[tokens]`` token ids, padding allowed where ``special_tokens_mask`` is 1.
        offsets: ``[tokens, 2]`` character spans of the tokens.
        special_tokens_mask: ``[tokens]`` 1 for [CLS], [SEP] and padding.
        scores: ``[tokens, labels]`` the :func:`softmax` of the model's logits for this window.
        vocab: Tokenizer and labels of the checkpoint.
        strategy: The pipeline's ``aggregation_strategy``.
        ignore_labels: Labels (or entity groups) left out of the result.

    Returns:
        The pipeline's records, numpy scalars included (see :func:`to_python`).
    """
    records = _pre_entities(text, input_ids, scores, offsets, special_tokens_mask, vocab)
    if strategy in (Strategy.NONE, Strategy.SIMPLE):
        items = []
        best = scores.argmax(axis=-1).tolist()  # one call for the window, not one per token
        for record in records:
            idx = best[record["index"]]
            items.append({"entity": vocab.id2label[idx], "score": record["scores"][idx],
                          "index": record["index"], "word": record["word"], "start": record["start"],
                          "end": record["end"]})
    else:
        items = _aggregate_words(records, strategy, vocab)
    if strategy is not Strategy.NONE:
        items = group_entities(items, vocab)
    ignored = set(ignore_labels)
    return [e for e in items if e.get("entity") not in ignored and e.get("entity_group") not in ignored]


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


def aggregate(text: str, windows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
              vocab: Vocabulary, strategy: Strategy = Strategy.SIMPLE,
              ignore_labels: Iterable[str] = ("O",)) -> list[dict]:
    """Entities of ``text`` from its windows ``(input_ids, offsets, special_tokens_mask, scores)``."""
    ignore_labels = tuple(ignore_labels)
    entities = [e for window in windows
                for e in aggregate_window(text, *window, vocab=vocab, strategy=strategy,
                                          ignore_labels=ignore_labels)]
    return resolve_overlaps(entities) if len(windows) > 1 else entities


def aggregate_texts(texts: Sequence[str], input_ids: np.ndarray, offsets: np.ndarray,
                    special_tokens_mask: np.ndarray, logits: np.ndarray, text_index: np.ndarray,
                    vocab: Vocabulary, strategy: Strategy = Strategy.SIMPLE,
                    ignore_labels: Iterable[str] = ("O",), scores: np.ndarray | None = None) -> list[list[dict]]:
    """Entities of every text of a request from its windows; ``text_index[w]`` is the text of window ``w``.

    ``scores``, when given, is ``softmax(logits)`` computed already (:func:`aggregate_requests` computes it once
    for many requests).
    """
    scores = softmax(logits) if scores is None else scores
    windows: list[list[tuple]] = [[] for _ in texts]
    for row, text in enumerate(text_index.tolist()):
        windows[text].append((input_ids[row], offsets[row], special_tokens_mask[row], scores[row]))
    return [aggregate(text, windows[i], vocab, strategy, ignore_labels) for i, text in enumerate(texts)]


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


def aggregate_requests(requests: Sequence[Windows], vocab: Vocabulary) -> list[list[list[dict]]]:
    """Entities of the texts of many requests: one softmax over the rows of all of them, then each request's
    pipeline logic with its own options."""
    if not requests:
        return []
    labels = requests[0].logits.shape[-1]
    scores = softmax(np.concatenate([r.logits.reshape(-1, labels) for r in requests]))
    bounds = np.cumsum([0, *(r.logits.size // labels for r in requests)])
    return [aggregate_texts(r.texts, r.input_ids, r.offsets, r.special_tokens_mask, r.logits, r.text_index, vocab,
                            r.strategy, r.ignore_labels, scores[bounds[k]:bounds[k + 1]].reshape(r.logits.shape))
            for k, r in enumerate(requests)]


def to_python(entities: list[dict]) -> list[dict]:
    """The records with plain Python numbers, ready for JSON."""
    return [{k: float(v) if k == "score" else v for k, v in e.items()} for e in entities]

"""What the text step does for every request one ``execute`` takes: windows, model calls, entities.

The texts of all requests are tokenized in one call, their windows pooled into length groups for the model step,
and the logits of all of them aggregated together; each request keeps its own options, limits and error, so one
bad request fails alone. No Triton import: the Python-backend model ``ner_text`` and the tests call this code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from triton_ner.core.aggregation import Windows, aggregate_requests
from triton_ner.core.batching import each_alone_on_failure
from triton_ner.core.length_groups import run_in_length_groups
from triton_ner.core.parameters import RequestOptions
from triton_ner.core.runners import Runner
from triton_ner.core.settings import Limits
from triton_ner.core.tokenization import Batch, prepare_requests
from triton_ner.core.vocabulary import Vocabulary

Entities = list[list[dict]]  # per text of a request, the pipeline's records


def entities_of_requests(vocab: Vocabulary, run: Runner, requests: Sequence[tuple[list[str], RequestOptions]
                                                                           | Exception], limits: Limits,
                         stopped: Callable[[int], Exception | None] | None = None,
                         lanes: Callable[..., Iterable[Any]] = map) -> list[Entities | Exception]:
    """The entities of each request's texts, or its error.

    Args:
        vocab: The tokenizer and labels.
        run: The model: ``(input_ids, attention_mask) -> logits``, called once per length group (or part of one).
        requests: Each request's texts and options, or the error it was already refused with (kept).
        limits: What one request may cost; how the model is called.
        stopped: ``stopped(i)`` returns an exception when request ``i`` must stop (cancelled, past its timeout);
            asked before each model call that holds its windows.
        lanes: Runs the length groups (:func:`~triton_ner.core.length_groups.run_in_length_groups`): ``map`` one
            after the other, an executor's ``map`` at once.
    """
    answers: list[Entities | Exception] = [r if isinstance(r, Exception) else [] for r in requests]
    asked = {i: r for i, r in enumerate(requests) if not isinstance(r, Exception)}
    batches: dict[int, Batch] = {}
    for i, batch in zip(asked, prepare_requests(vocab.tokenizer, list(asked.values()), limits.max_windows,
                                                limits.max_tokens_per_request), strict=True):
        if isinstance(batch, Exception):
            answers[i] = batch
        else:
            batches[i] = batch
    tokenized = list(batches)
    logits = run_in_length_groups(
        run, [(batches[i].input_ids, batches[i].attention_mask) for i in tokenized], limits.pad_lengths,
        limits.max_rows_per_call, vocab.tokenizer.pad_token_id,
        None if stopped is None else lambda k: stopped(tokenized[k]), limits.max_tokens_per_call or None,
        lanes) if tokenized else []
    windows = {}
    for i, result in zip(tokenized, logits, strict=True):
        if isinstance(result, Exception):
            answers[i] = result
        else:
            (texts, options), batch = asked[i], batches[i]
            windows[i] = Windows(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, result,
                                 batch.text_index, strategy=options.aggregation_strategy,
                                 ignore_labels=options.ignore_labels)
    for i, found in zip(windows, _aggregate(list(windows.values()), vocab), strict=True):
        answers[i] = found
    return answers


def _aggregate(requests: list[Windows], vocab: Vocabulary) -> list[Entities | Exception]:
    """:func:`aggregate_requests` of all; if that fails, each request alone, so that only the one at fault fails."""
    found: list[Entities | Exception] = [[] for _ in requests]
    pooled = each_alone_on_failure(lambda members: aggregate_requests([requests[m] for m in members], vocab),
                                   list(range(len(requests))))
    for members, result in pooled:
        answers: list[Entities | Exception] = [result] * len(members) if isinstance(result, Exception) else [*result]
        for m, entities in zip(members, answers, strict=True):
            found[m] = entities
    return found


def warm_up_logits(labels: int) -> Runner:
    """A model that finds the last label everywhere: for warming up the text step, entity grouping included,
    without the model step."""

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        logits = np.zeros((*input_ids.shape, labels), dtype=np.float32)
        logits[..., -1] = 1.0
        return logits

    return run

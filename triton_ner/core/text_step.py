"""What the text step does for every request one ``execute`` takes: windows, model calls, entities.

The texts of all requests are tokenized in one call, their windows pooled into length groups for the model step,
and the logits of all of them aggregated together; each request keeps its own options, limits and error, so one
bad request fails alone. No Triton import: the Python-backend model ``ner_text`` and the tests call this code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from triton_ner.core.aggregation import Pooled, aggregate_pooled
from triton_ner.core.batching import each_alone_on_failure
from triton_ner.core.length_groups import run_pooled
from triton_ner.core.parameters import RequestOptions
from triton_ner.core.runners import Runner
from triton_ner.core.settings import Limits
from triton_ner.core.tokenization import Pool, prepare_pool
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
        lanes: Runs the length groups (:func:`~triton_ner.core.length_groups.run_pooled`): ``map`` one after the
            other, an executor's ``map`` at once.
    """
    pool, owner, errors = windows_of_requests(vocab, requests, limits)
    answers: list[Entities | Exception] = [errors.get(i, []) for i in range(len(requests))]
    if not pool.requests:
        return answers
    logits, failed = logits_of_pool(vocab, run, pool, limits, None if stopped is None else lambda k: stopped(owner[k]),
                                    lanes)
    for k, failure in failed.items():
        answers[owner[k]] = failure
    batch = pool.batch
    options = [requests[i][1] for i in owner]  # type: ignore[index]  # pooled: not refused
    windows = Pooled(pool.texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits, batch.text_index,
                     pool.window_request, pool.first_text, [(o.aggregation_strategy, o.ignore_labels) for o in options])
    ran = [k for k in range(len(pool.requests)) if k not in failed]
    for members, found in each_alone_on_failure(lambda m: aggregate_pooled(windows, vocab, m), ran) if ran else []:
        results: list[Entities | Exception] = [found] * len(members) if isinstance(found, Exception) else [*found]
        for k, entities in zip(members, results, strict=True):
            answers[owner[k]] = entities
    return answers


def windows_of_requests(vocab: Vocabulary, requests: Sequence[tuple[list[str], RequestOptions] | Exception],
                        limits: Limits) -> tuple[Pool, list[int], dict[int, Exception]]:
    """The windows of the requests not refused, in one :class:`~triton_ner.core.tokenization.Pool`
    (:func:`~triton_ner.core.tokenization.prepare_pool`); each pooled request's index in ``requests``; and the error
    of each refused request by its index (those refused already, and those the tokenizer's limits refuse)."""
    asked = [i for i, r in enumerate(requests) if not isinstance(r, Exception)]
    pool, refused = prepare_pool(vocab.tokenizer, [requests[i] for i in asked],  # type: ignore[misc]  # not refused
                                 limits.max_windows, limits.max_tokens_per_request)
    errors = {i: r for i, r in enumerate(requests) if isinstance(r, Exception)}
    errors.update({asked[k]: error for k, error in refused.items()})
    return pool, [asked[k] for k in pool.requests], errors


def logits_of_pool(vocab: Vocabulary, run: Runner, pool: Pool, limits: Limits,
                   stopped: Callable[[int], Exception | None] | None = None,
                   lanes: Callable[..., Iterable[Any]] = map) -> tuple[np.ndarray, dict[int, Exception]]:
    """The model's logits of the pool's windows, in the length groups and calls ``limits`` set
    (:func:`~triton_ner.core.length_groups.run_pooled`), and the error of each pooled request that failed or was
    stopped (by its position in ``pool.requests``; ``stopped`` is asked by that position too)."""
    batch = pool.batch
    return run_pooled(run, batch.input_ids, batch.attention_mask, pool.window_request, limits.pad_lengths,
                      limits.max_rows_per_call, vocab.tokenizer.pad_token_id, stopped,
                      limits.max_tokens_per_call or None, lanes)


def warm_up_logits(labels: int) -> Runner:
    """A model that finds the last label everywhere: for warming up the text step, entity grouping included,
    without the model step."""

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        logits = np.zeros((*input_ids.shape, labels), dtype=np.float32)
        logits[..., -1] = 1.0
        return logits

    return run

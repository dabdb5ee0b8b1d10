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
from triton_ner.core.tokenization import prepare_pool
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
    answers: list[Entities | Exception] = [r if isinstance(r, Exception) else [] for r in requests]
    asked = [i for i, r in enumerate(requests) if not isinstance(r, Exception)]
    options = [r[1] for r in requests if not isinstance(r, Exception)]
    pool, refused = prepare_pool(vocab.tokenizer, [r for r in requests if not isinstance(r, Exception)],
                                 limits.max_windows, limits.max_tokens_per_request)
    for k, error in refused.items():
        answers[asked[k]] = error
    if not pool.requests:
        return answers
    owner = [asked[i] for i in pool.requests]  # each pooled request's index in ``requests``
    batch = pool.batch
    logits, failed = run_pooled(run, batch.input_ids, batch.attention_mask, pool.window_request, limits.pad_lengths,
                                limits.max_rows_per_call, vocab.tokenizer.pad_token_id,
                                None if stopped is None else lambda k: stopped(owner[k]),
                                limits.max_tokens_per_call or None, lanes)
    for k, failure in failed.items():
        answers[owner[k]] = failure
    windows = Pooled(pool.texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits, batch.text_index,
                     pool.window_request, pool.first_text,
                     [(options[i].aggregation_strategy, options[i].ignore_labels) for i in pool.requests])
    ran = [k for k in range(len(pool.requests)) if k not in failed]
    for members, found in each_alone_on_failure(lambda m: aggregate_pooled(windows, vocab, m), ran) if ran else []:
        results: list[Entities | Exception] = [found] * len(members) if isinstance(found, Exception) else [*found]
        for k, entities in zip(members, results, strict=True):
            answers[owner[k]] = entities
    return answers


def warm_up_logits(labels: int) -> Runner:
    """A model that finds the last label everywhere: for warming up the text step, entity grouping included,
    without the model step."""

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        logits = np.zeros((*input_ids.shape, labels), dtype=np.float32)
        logits[..., -1] = 1.0
        return logits

    return run

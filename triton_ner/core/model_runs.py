"""The model step's planner: the windows of every request of a dynamic batch pooled, sorted by length and run in
groups of at most a token budget; each request gets back its own rows or its own error."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from triton_ner.core.batching import PAD_LENGTHS, each_alone_on_failure, pad_stack, padded_widths, split_like
from triton_ner.core.errors import InvalidInput


def plan_runs(lengths: np.ndarray, max_tokens: int, max_padding: float = 2.0,
              pad_lengths: tuple[int, ...] = PAD_LENGTHS) -> list[np.ndarray]:
    """Group rows into model runs of similar lengths, each of at most ``max_tokens`` padded tokens.

    A run takes rows down to ``1 / max_padding`` of its longest one (attention's cost is quadratic in the padded
    length); a row longer than the budget runs alone. A run never mixes rows of two ``pad_lengths``, so a request's
    runs, and what depends on them (INT8's dynamic activation scales), do not depend on how it was batched.
    """
    widths = padded_widths(lengths, pad_lengths)
    runs: list[np.ndarray] = []
    for width in sorted(np.unique(widths).tolist(), reverse=True):
        members = np.flatnonzero(widths == width)
        order = members[np.argsort(-lengths[members], kind="stable")]
        ordered = lengths[order]
        start = 0
        while start < len(order):
            longest = max(int(ordered[start]), 1)
            # Rows join while the run stays in the budget and each is long enough (lengths only fall from here).
            joins = ((np.arange(1, len(order) - start + 1) * longest <= max_tokens)
                     & (ordered[start:] * max_padding >= longest))
            joins[0] = True
            end = start + (len(joins) if joins.all() else int(joins.argmin()))
            runs.append(order[start:end])
            start = end
    return runs


def run_in_groups(run: Callable[[np.ndarray, np.ndarray], np.ndarray], input_ids: np.ndarray,
                  attention_mask: np.ndarray, max_tokens: int,
                  keep: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Logits ``[rows, tokens, labels]`` of padded inputs, computed in length-sorted groups (:func:`plan_runs`).

    Each group is cut to its own longest row before it runs; positions past a row's length are zero.
    ``keep(rows)``, asked before each run, says which of its rows are still wanted (a mask): so a request
    cancelled or past its timeout stops between runs, and rows left out stay zero.
    """
    lengths = attention_mask.sum(axis=1)
    logits: np.ndarray | None = None
    for rows in plan_runs(lengths, max_tokens):
        if keep is not None:
            rows = rows[keep(rows)]
            if not len(rows):
                continue
        width = max(int(lengths[rows].max()), 1)
        out = run(np.ascontiguousarray(input_ids[rows, :width]), np.ascontiguousarray(attention_mask[rows, :width]))
        if logits is None:
            logits = np.zeros((*input_ids.shape, out.shape[-1]), dtype=np.float32)
        logits[rows, :width] = out
    return logits if logits is not None else np.zeros((*input_ids.shape, 0), dtype=np.float32)


def check_rows(input_ids: np.ndarray, attention_mask: np.ndarray, max_length: int, vocab_size: int) -> None:
    """Refuse model-step inputs the model cannot run, naming the problem (:class:`InvalidInput`)."""
    if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
        raise InvalidInput(f"input_ids {list(input_ids.shape)} and attention_mask {list(attention_mask.shape)} "
                           "must both be [windows, tokens]")
    if input_ids.shape[1] > max_length:
        raise InvalidInput(f"windows of {input_ids.shape[1]} tokens; the model takes at most {max_length}")
    if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise InvalidInput(f"input_ids holds {input_ids.max() if input_ids.max() >= vocab_size else input_ids.min()}"
                           f"; token ids are 0 to {vocab_size - 1}")


def run_requests(run: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 inputs: list[tuple[np.ndarray, np.ndarray] | Exception],
                 max_tokens: int, stopped: Callable[[int], Exception | None] | None = None,
                 ) -> list[np.ndarray | Exception]:
    """Logits of each request of a dynamic batch, its rows pooled with the others' (:func:`run_in_groups`).

    An input already refused (an exception) keeps its error. If the pooled run fails, each request runs
    alone, so that one bad request fails itself and no other request of the batch. ``stopped(i)``, asked
    before each run that holds rows of request ``i``, returns an exception (a :class:`Stopped`) when that
    request must stop: its remaining rows are left out and the exception is its answer.
    """
    results: list[np.ndarray | Exception] = [x if isinstance(x, Exception) else _NOT_RUN for x in inputs]
    rows = {i: x for i, x in enumerate(inputs) if not isinstance(x, Exception)}
    halted: dict[int, Exception] = {}

    def pooled(indices: list[int]) -> list[np.ndarray]:
        ids, masks = [rows[i][0] for i in indices], [rows[i][1] for i in indices]
        owners = np.repeat(indices, [len(a) for a in ids])

        def keep(chosen: np.ndarray, ask: Callable[[int], Exception | None]) -> np.ndarray:
            for i in np.unique(owners[chosen]).tolist():
                if i not in halted and (reason := ask(i)) is not None:
                    halted[i] = reason
            return ~np.isin(owners[chosen], list(halted))

        logits = run_in_groups(run, pad_stack(ids), pad_stack(masks), max_tokens,
                               None if stopped is None else functools.partial(keep, ask=stopped))
        return split_like(logits, ids)

    for group, found in each_alone_on_failure(pooled, list(rows)) if rows else []:
        answers: list[np.ndarray | Exception] = [found] * len(group) if isinstance(found, Exception) else [*found]
        for i, logits in zip(group, answers, strict=True):
            results[i] = logits
    return [halted.get(i, result) for i, result in enumerate(results)]


# What a request's place holds until its rows have run (each_alone_on_failure answers every member).
_NOT_RUN = np.empty(0, dtype=np.float32)

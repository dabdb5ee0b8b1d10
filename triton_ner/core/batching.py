"""Padding requests of different lengths into one batch, grouping rows into model runs, splitting the result back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from triton_ner.core.parameters import InvalidInput
from triton_ner.core.runners import Runner


class Stopped(Exception):
    """A request cancelled by its client, or past its timeout, before all its rows ran."""


def pad_stack(arrays: list[np.ndarray], pad_value: int = 0) -> np.ndarray:
    """Stack ``[rows, length_i]`` arrays into ``[sum(rows), max(length_i)]``, right-padded with ``pad_value``."""
    length = max(a.shape[1] for a in arrays)
    out = np.full((sum(a.shape[0] for a in arrays), length), pad_value, dtype=arrays[0].dtype)
    row = 0
    for a in arrays:
        out[row:row + a.shape[0], :a.shape[1]] = a
        row += a.shape[0]
    return out


def split_like(batch: np.ndarray, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Cut ``batch`` (``[sum(rows), max_length, ...]``) back into one piece per array of :func:`pad_stack`."""
    pieces, row = [], 0
    for a in arrays:
        pieces.append(batch[row:row + a.shape[0], :a.shape[1]])
        row += a.shape[0]
    return pieces


# The padded lengths the tokenizer groups windows by (configs' ``pad_to_lengths``): powers of two up to 512.
PAD_LENGTHS = (16, 32, 64, 128, 256, 512)
MAX_TOKENS_PER_RUN = 16384  # most padded tokens in one call of the project's runner (ServingOptions' default)
GPU_MAX_ROWS = 128  # most windows in one run of a GPU model step (ServingOptions' default)


def bucket_widths(lengths: np.ndarray, buckets: tuple[int, ...] = PAD_LENGTHS) -> np.ndarray:
    """Each row's bucket: the smallest of ``buckets`` that holds it (a row longer than all: its own length)."""
    ordered = np.asarray(sorted(buckets))
    index = np.searchsorted(ordered, np.maximum(lengths, 1))
    return np.where(index < len(ordered), ordered[np.minimum(index, len(ordered) - 1)], lengths)


def plan_runs(lengths: np.ndarray, max_tokens: int, max_padding: float = 2.0,
              buckets: tuple[int, ...] = PAD_LENGTHS) -> list[np.ndarray]:
    """Group rows into model runs of similar lengths, each of at most ``max_tokens`` padded tokens.

    Rows are sorted by length and a run takes rows down to ``1 / max_padding`` of its longest one, so a
    sentence of 20 tokens is never padded to a 512-token window of the same batch: with attention's quadratic
    cost, one long row padding 31 short ones made a batch of 32 slower than 32 runs of one. A row longer
    than the budget runs alone. A run never mixes rows of two ``buckets`` (the lengths the text step calls the
    model step with), so one request's runs are the same whether its length groups reach the runner together or
    apart (in process, in one dynamic batch or in several): results that depend on the run's rows, as INT8's
    dynamic activation scales do, do not depend on timing.
    """
    widths = bucket_widths(lengths, buckets)
    runs: list[np.ndarray] = []
    for width in sorted(np.unique(widths).tolist(), reverse=True):
        members = np.flatnonzero(widths == width)
        order = members[np.argsort(-lengths[members], kind="stable")]
        start = 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            end = start + 1
            while (end < len(order) and (end - start + 1) * longest <= max_tokens
                   and lengths[order[end]] * max_padding >= longest):
                end += 1
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
    logits = None
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


def bucket_runs(lengths: np.ndarray, buckets: tuple[int, ...], max_rows: int,
                max_tokens: int | None = None) -> list[tuple[np.ndarray, int]]:
    """Rows grouped by the smallest of ``buckets`` that holds each one, in runs of at most ``max_rows`` rows and
    ``max_tokens`` padded tokens (at least one row).

    Returns ``(rows, width)`` pairs, shortest width first. Every run has one of a few shapes, so that backends
    which batch equal shapes only (NVIDIA's onnxruntime and pytorch) batch the runs of many requests, and a short
    window is padded to its own bucket, not to a long neighbour's length. A row longer than every bucket runs at
    its own length.
    """
    widths = bucket_widths(lengths, buckets)
    runs = []
    for width in np.unique(widths):
        rows = np.flatnonzero(widths == width)
        step = max(1, min(max_rows, max_tokens // int(width))) if max_tokens else max_rows
        runs.extend((rows[i:i + step], int(width)) for i in range(0, len(rows), step))
    return runs


def run_requests_in_buckets(run: Runner, inputs: list[tuple[np.ndarray, np.ndarray]], buckets: tuple[int, ...],
                            max_rows: int, pad_id: int = 0, stopped: Callable[[int], Exception | None] | None = None,
                            max_tokens: int | None = None, lanes: Callable = map) -> list[np.ndarray | Exception]:
    """Logits of each request's ``(input_ids, attention_mask)``, the rows of all of them pooled into the runs of
    :func:`bucket_runs`.

    The runs of one width form a lane and run one after the other; ``lanes(function, lanes)`` runs the lanes
    (``map``, one after the other; an executor's ``map`` runs them at once, so that the model step sees every
    width of the batch together). ``stopped(i)``, asked before each run that holds rows of request ``i``, returns
    an exception (a :class:`Stopped`) when that request must stop: its remaining rows are left out and the
    exception is its answer. When a run fails, each request with rows in it runs them alone, so that one bad
    request fails alone.
    """
    lengths = np.concatenate([mask.sum(axis=1) for _, mask in inputs])
    owners = np.repeat(np.arange(len(inputs)), [len(ids) for ids, _ in inputs])
    ids, masks = pad_stack([i for i, _ in inputs], pad_id), pad_stack([m for _, m in inputs])
    failed: dict[int, Exception] = {}

    def call(rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        padded_ids = np.full((len(rows), width), pad_id, dtype=ids.dtype)
        padded_mask = np.zeros((len(rows), width), dtype=masks.dtype)
        kept = min(width, ids.shape[1])
        padded_ids[:, :kept], padded_mask[:, :kept] = ids[rows, :kept], masks[rows, :kept]
        return rows, run(padded_ids, padded_mask)[:, :kept]

    def lane(runs: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        done = []
        for rows, width in runs:
            for i in np.unique(owners[rows]).tolist():
                if i not in failed and stopped is not None and (reason := stopped(i)) is not None:
                    failed[i] = reason
            rows = rows[~np.isin(owners[rows], list(failed))]
            if not len(rows):
                continue
            try:
                done.append(call(rows, width))
            except Exception as error:  # noqa: BLE001: find the request at fault: each runs its rows alone
                alone = np.unique(owners[rows]).tolist()
                if len(alone) == 1:
                    failed[alone[0]] = error
                    continue
                for i in alone:
                    try:
                        done.append(call(rows[owners[rows] == i], width))
                    except Exception as own:  # noqa: BLE001
                        failed[i] = own
        return done

    by_width: dict[int, list] = {}
    for rows, width in bucket_runs(lengths, buckets, max_rows, max_tokens):
        by_width.setdefault(width, []).append((rows, width))
    run_lanes = lanes if len(by_width) > 1 else map  # one lane needs no other thread
    finished = [piece for pieces in run_lanes(lane, list(by_width.values())) for piece in pieces]
    labels = finished[0][1].shape[-1] if finished else 0
    logits = np.zeros((*ids.shape, labels), dtype=np.float32)
    for rows, out in finished:
        logits[rows, :out.shape[1]] = out
    pieces = split_like(logits, [i for i, _ in inputs])
    return [failed.get(i, piece) for i, piece in enumerate(pieces)]


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
    results: list[np.ndarray | Exception | None] = [x if isinstance(x, Exception) else None for x in inputs]
    valid = [i for i, x in enumerate(inputs) if not isinstance(x, Exception)]
    halted: dict[int, Exception] = {}

    def pooled(indices: list[int]) -> list[np.ndarray]:
        ids, masks = [inputs[i][0] for i in indices], [inputs[i][1] for i in indices]
        owners = np.repeat(indices, [len(a) for a in ids])

        def keep(rows: np.ndarray) -> np.ndarray:
            for i in np.unique(owners[rows]).tolist():
                if i not in halted and (reason := stopped(i)) is not None:
                    halted[i] = reason
            return ~np.isin(owners[rows], list(halted))

        logits = run_in_groups(run, pad_stack(ids), pad_stack(masks), max_tokens,
                               keep if stopped is not None else None)
        return split_like(logits, ids)

    try:
        for i, logits in zip(valid, pooled(valid) if valid else []):
            results[i] = logits
    except Exception:  # noqa: BLE001: find the request at fault
        for i in valid:
            try:
                results[i] = pooled([i])[0]
            except Exception as error:  # noqa: BLE001
                results[i] = error
    return [halted.get(i, result) for i, result in enumerate(results)]

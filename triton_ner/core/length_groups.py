"""The text step's planner: the windows of every request of one ``execute`` pooled into groups of one padded
length each, in calls of a few shapes, every length at once; each request gets back its own logits or its own
error."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from triton_ner.core.batching import each_alone_on_failure, padded_widths
from triton_ner.core.runners import Runner


def length_group_runs(lengths: np.ndarray, pad_lengths: tuple[int, ...], max_rows: int,
                      max_tokens: int | None = None) -> list[tuple[np.ndarray, int]]:
    """``(rows, width)`` runs, shortest width first: rows grouped by the smallest of ``pad_lengths`` that holds each
    one (a longer row at its own length), at most ``max_rows`` rows and ``max_tokens`` padded tokens a run."""
    widths = padded_widths(lengths, pad_lengths)
    runs: list[tuple[np.ndarray, int]] = []
    for width in np.unique(widths):
        rows = np.flatnonzero(widths == width)
        step = max(1, min(max_rows, max_tokens // int(width))) if max_tokens else max_rows
        runs.extend((rows[i:i + step], int(width)) for i in range(0, len(rows), step))
    return runs


def run_pooled(run: Runner, ids: np.ndarray, masks: np.ndarray, owners: np.ndarray, pad_lengths: tuple[int, ...],
               max_rows: int, pad_id: int = 0, stopped: Callable[[int], Exception | None] | None = None,
               max_tokens: int | None = None, lanes: Callable[..., Iterable[Any]] = map
               ) -> tuple[np.ndarray, dict[int, Exception]]:
    """Logits ``[rows, tokens, labels]`` of the pooled windows of many requests (``owners[row]`` is a row's
    request), computed in the runs of :func:`length_group_runs`, and the exception of each request that failed or
    was stopped (its rows are left zero).

    ``lanes(function, lanes)`` runs the lanes (the runs of one width each): ``map`` one after the other, an
    executor's ``map`` at once. ``stopped(i)``, asked before each run with rows of request ``i``, returns the
    exception that ends that request. A failed run is rerun request by request, so that a bad request fails alone.
    """
    failed: dict[int, Exception] = {}

    def call(rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        padded_ids = np.full((len(rows), width), pad_id, dtype=ids.dtype)
        padded_mask = np.zeros((len(rows), width), dtype=masks.dtype)
        kept = min(width, ids.shape[1])
        padded_ids[:, :kept], padded_mask[:, :kept] = ids[rows, :kept], masks[rows, :kept]
        return rows, run(padded_ids, padded_mask)[:, :kept]

    def lane(runs: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        done: list[tuple[np.ndarray, np.ndarray]] = []
        for rows, width in runs:
            for i in np.unique(owners[rows]).tolist():
                if i not in failed and stopped is not None and (reason := stopped(i)) is not None:
                    failed[i] = reason
            rows = rows[~np.isin(owners[rows], list(failed))]
            if not len(rows):
                continue
            members = np.unique(owners[rows]).tolist()
            for group, found in each_alone_on_failure(functools.partial(_call_members, call, owners, rows, width),
                                                      members):
                if isinstance(found, Exception):
                    failed.update(dict.fromkeys(group, found))
                else:
                    done.append(found)
        return done

    by_width: dict[int, list] = {}
    for rows, width in length_group_runs(masks.sum(axis=1), pad_lengths, max_rows, max_tokens):
        by_width.setdefault(width, []).append((rows, width))
    run_lanes = lanes if len(by_width) > 1 else map  # one lane needs no other thread
    finished = [piece for pieces in run_lanes(lane, list(by_width.values())) for piece in pieces]
    labels = finished[0][1].shape[-1] if finished else 0
    logits = np.zeros((*ids.shape, labels), dtype=np.float32)
    for rows, out in finished:
        logits[rows, :out.shape[1]] = out
    return logits, failed


def _call_members(call: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]], owners: np.ndarray,
                  rows: np.ndarray, width: int, members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``call`` on those of ``rows`` that belong to ``members`` (``owners[row]`` is a row's request)."""
    return call(rows[np.isin(owners[rows], members)], width)

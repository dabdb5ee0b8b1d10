"""Padding requests of different lengths into one batch, and splitting the result back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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


def plan_runs(lengths: np.ndarray, max_tokens: int, max_padding: float = 2.0) -> list[np.ndarray]:
    """Group rows into model runs of similar lengths, each of at most ``max_tokens`` padded tokens.

    Rows are sorted by length and a run takes rows down to ``1 / max_padding`` of its longest one, so a
    sentence of 20 tokens is never padded to a 512-token window of the same batch: with attention's quadratic
    cost, one long row padding 31 short ones made a batch of 32 slower than 32 runs of one. A row longer
    than the budget runs alone.
    """
    order = np.argsort(-lengths, kind="stable")
    runs: list[np.ndarray] = []
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
                  attention_mask: np.ndarray, max_tokens: int) -> np.ndarray:
    """Logits ``[rows, tokens, labels]`` of padded inputs, computed in length-sorted groups (:func:`plan_runs`).

    Each group is cut to its own longest row before it runs; positions past a row's length are zero.
    """
    lengths = attention_mask.sum(axis=1)
    logits = None
    for rows in plan_runs(lengths, max_tokens):
        width = max(int(lengths[rows].max()), 1)
        out = run(np.ascontiguousarray(input_ids[rows, :width]), np.ascontiguousarray(attention_mask[rows, :width]))
        if logits is None:
            logits = np.zeros((*input_ids.shape, out.shape[-1]), dtype=np.float32)
        logits[rows, :width] = out
    return logits

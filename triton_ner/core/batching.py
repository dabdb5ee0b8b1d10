"""What both steps' planners share: padding requests of different lengths into one batch and splitting the result
back, the padded lengths, the limits' defaults, and running a pool with each member alone on failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

M = TypeVar("M")
R = TypeVar("R")


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


# The padded lengths the tokenizer groups windows by (configs' ``pad_lengths``): powers of two up to 512.
PAD_LENGTHS = (16, 32, 64, 128, 256, 512)
MAX_TOKENS_PER_RUN = 16384  # most padded tokens in one call of the project's runner (ServingOptions' default)
GPU_MAX_ROWS = 128  # most windows in one run of a GPU model step (ServingOptions' default)


def padded_widths(lengths: np.ndarray, pad_lengths: tuple[int, ...] = PAD_LENGTHS) -> np.ndarray:
    """Each row's padded width: the smallest of ``pad_lengths`` that holds it (longer than all: its own length)."""
    ordered = np.asarray(sorted(pad_lengths))
    index = np.searchsorted(ordered, np.maximum(lengths, 1))
    return np.where(index < len(ordered), ordered[np.minimum(index, len(ordered) - 1)], lengths)


def each_alone_on_failure(run: Callable[[list[M]], R], members: list[M]) -> list[tuple[list[M], R | Exception]]:
    """``[(members, run(members))]``, or when that raises, each member run alone: ``[([m], run([m]) or its
    error), ...]``, so that one bad member (a request) fails alone and the others get their results. A lone member
    keeps the error it raised."""
    try:
        return [(members, run(members))]
    except Exception as error:  # noqa: BLE001 - find the member at fault
        if len(members) == 1:
            return [(members, error)]
    alone: list[tuple[list[M], R | Exception]] = []
    for member in members:
        try:
            alone.append(([member], run([member])))
        except Exception as error:  # noqa: BLE001
            alone.append(([member], error))
    return alone

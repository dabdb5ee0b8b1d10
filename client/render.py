"""The terminal view of the command lines: each text with its entities highlighted, one colour per entity type,
and the progress bar on stderr."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.text import Text

COLOURS = {"PER": "magenta", "ORG": "cyan", "LOC": "green", "MISC": "yellow"}
# Types of other label sets get a colour of their own, the same one on every run.
PALETTE = ("blue", "red", "bright_magenta", "bright_cyan", "bright_green", "bright_yellow", "bright_blue")


def entity_type(entity: dict) -> str:
    """``PER`` from ``entity_group`` (grouping strategies) or from ``entity`` (``B-PER``, strategy ``none``)."""
    if "entity_group" in entity:
        return entity["entity_group"]
    label = entity.get("entity", "?")
    return label[2:] if label[:2] in ("B-", "I-") else label


def colour(kind: str) -> str:
    return COLOURS.get(kind) or PALETTE[zlib.crc32(kind.encode()) % len(PALETTE)]


def highlighted(text: str, entities: list[dict]) -> Text:
    """``text`` with each entity in bold on its type's colour, followed by ``[TYPE]`` in that colour."""
    view = Text()
    position = 0
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        start, end = entity["start"], entity["end"]
        if start < position:  # overlapping spans do not come from the pipeline; show the first one only
            continue
        kind = entity_type(entity)
        view.append(text[position:start])
        view.append(text[start:end], style=f"bold black on {colour(kind)}")
        view.append(f"[{kind}]", style=f"bold {colour(kind)}")
        position = end
    view.append(text[position:])
    return view


@contextmanager
def progress(show: bool, label: str, unit: str, total: int | None) -> Iterator[Callable[[], None]]:
    """``advance()``, which moves a progress bar on stderr by one ``unit``; a no-op unless ``show`` and stderr is
    a terminal (a bar in a log file would be noise)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not show or not console.is_terminal:
        yield lambda: None
        return
    # Transient: a failure leaves its one line only. Not redirecting stdout: the results must not go to stderr.
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True, redirect_stdout=False,
                  redirect_stderr=False) as bar:
        task = bar.add_task(unit, total=total)
        yield lambda: bar.advance(task)

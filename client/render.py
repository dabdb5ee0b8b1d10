"""The terminal view of the command line: each text with its entities highlighted, one colour per entity type."""

from __future__ import annotations

import zlib

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

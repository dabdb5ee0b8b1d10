"""Texts of the command line: arguments, stdin, ``.txt`` files (one text per line), ``.jsonl`` files (a ``text``
field per line), read lazily so that a large file streams through."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TextIO

STDIN = Path("-")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class InputError(ValueError):
    """Input that is not texts; the message names the file and the line."""


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def text_lines(lines: Iterable[str]) -> Iterator[str]:
    """One text per line, without its line ending; an empty line is an (empty) text, so outputs match lines."""
    for line in lines:
        yield line.rstrip("\r\n")


def jsonl_texts(lines: Iterable[str], source: str) -> Iterator[str]:
    """The ``text`` field of each JSON object, one per line; blank lines are skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{source}:{number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f"{source}:{number}: not a JSON object with a string field \"text\"")
        yield record["text"]


def _file_texts(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8") as file:
            yield from jsonl_texts(file, str(path)) if is_jsonl(path) else text_lines(file)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None


def read_texts(arguments: Iterable[str], files: Iterable[Path], stdin: TextIO) -> Generator[str, None, None]:
    """The arguments, then each file in turn (``-`` is stdin); stdin alone when there are neither."""
    arguments, files = list(arguments), list(files)
    yield from arguments
    for path in files:
        yield from text_lines(stdin) if path == STDIN else _file_texts(path)
    if not arguments and not files:
        yield from text_lines(stdin)


def count_texts(arguments: Iterable[str], files: Iterable[Path]) -> int | None:
    """How many texts :func:`read_texts` will give, or None when stdin is read (it cannot be read twice).

    Counts lines without parsing them: a quick pass that lets a progress bar show how far a large file is.
    """
    arguments, files = list(arguments), list(files)
    if not files:
        return len(arguments) or None
    total = len(arguments)
    for path in files:
        if path == STDIN:
            return None
        try:
            with path.open("rb") as file:
                total += sum(1 for line in file if line.strip() or not is_jsonl(path))
        except OSError as error:
            raise InputError(f"{path}: {error.strerror or error}") from None
    return total

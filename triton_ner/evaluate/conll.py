"""CoNLL-format data: reading it (a file, or CoNLL-2003 from the Hub), its tagging scheme, and tags to and from
token spans."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

CONLL2003_DATASET = "lhoestq/conll2003"  # CoNLL-2003 as data files, loadable without a dataset script


# Hugging Face's conll2003 label order, for a copy whose ner_tags are integers without names.
CONLL2003_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")



DOCSTART = "-DOCSTART-"


TAG = re.compile(r"(?:O|[BI]-\S+)\Z")


HUB_TIMEOUT_S = 5.0


class Scheme(str, Enum):
    """How entities are tagged. IOB2: every entity starts with ``B-``. IOB1 (the original CoNLL-2003 files):
    ``I-`` throughout, ``B-`` only on the first token of an entity that directly follows one of the same type."""

    IOB1 = "iob1"
    IOB2 = "iob2"


class DataError(ValueError):
    """Data that cannot be evaluated; the message names the file and the line."""


class DataUnavailable(RuntimeError):
    """A data set that cannot be loaded here (no ``datasets`` library, no Hub); the message is one line."""


@dataclass(frozen=True)
class Sentence:
    """Tokens with their gold tags, and the line of each token in its file (empty for a Hub data set)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    lines: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        """What is sent to the model: the tokens joined by single spaces."""
        return " ".join(self.tokens)

    def where(self, index: int, source: str) -> str:
        return f"{source}:{self.lines[index]}" if self.lines else f"{source}: token {index + 1}"


def parse_conll(lines: Iterable[str], source: str = "<data>") -> list[Sentence]:
    """Sentences of CoNLL-format lines: one token per line, the token in the first column and its tag in the last,
    every line with the same number of columns, a blank line between sentences; ``-DOCSTART-`` lines are skipped.

    Raises:
        DataError: A token without a tag, a line with another number of columns than the first, a tag that is not
            ``O``, ``B-TYPE`` or ``I-TYPE``, or no sentence at all; the message names the line.
    """
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    numbers: list[int] = []
    columns = 0
    number = 0

    def close() -> None:
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(tags), tuple(numbers)))
            tokens.clear()
            tags.clear()
            numbers.clear()

    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            close()
            continue
        if len(fields) == 1:
            raise DataError(f"{source}:{number}: token {fields[0]!r} has no tag (expected the token first and its "
                            "tag in the last column)")
        columns = columns or len(fields)
        if len(fields) != columns:
            raise DataError(f"{source}:{number}: {len(fields)} columns where the first line has {columns}")
        if not TAG.match(fields[-1]):
            raise DataError(f"{source}:{number}: unknown tag {fields[-1]!r} (expected O, B-TYPE or I-TYPE)")
        tokens.append(fields[0])
        tags.append(fields[-1])
        numbers.append(number)
    close()
    if not sentences:
        where = "the file is empty" if number == 0 else "only blank lines and -DOCSTART-"
        raise DataError(f"{source}:{max(number, 1)}: no sentences ({where})")
    return sentences


def read_conll(path: Path) -> list[Sentence]:
    """:func:`parse_conll` of a UTF-8 file."""
    try:
        with path.open(encoding="utf-8") as file:
            return parse_conll(file, str(path))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: {error.strerror or error}") from None


def _opens_entity(tag: str, previous: str) -> bool:
    """An ``I-`` tag that starts an entity: after ``O``, at the sentence's start or after another type."""
    return tag.startswith("I-") and previous[2:] != tag[2:]


def detect_scheme(sentences: Iterable[Sentence]) -> Scheme:
    """IOB1 if some entity starts with ``I-``; otherwise IOB2 (also when the data cannot tell)."""
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            if _opens_entity(tag, previous):
                return Scheme.IOB1
            previous = tag
    return Scheme.IOB2


def check_scheme(sentences: Iterable[Sentence], scheme: Scheme, source: str = "<data>") -> None:
    """Raise :class:`DataError` at the first tag that ``scheme`` does not allow."""
    for sentence in sentences:
        previous = "O"
        for index, tag in enumerate(sentence.tags):
            if scheme is Scheme.IOB2 and _opens_entity(tag, previous):
                raise DataError(f"{sentence.where(index, source)}: {tag} opens an entity, which IOB2 does not "
                                "allow (the data looks IOB1: --scheme iob1, or leave --scheme out)")
            if scheme is Scheme.IOB1 and tag.startswith("B-") and previous[2:] != tag[2:]:
                raise DataError(f"{sentence.where(index, source)}: {tag} after {previous}, which IOB1 does not "
                                "allow (B- only separates two entities of one type: --scheme iob2, or leave "
                                "--scheme out)")
            previous = tag


def load_conll2003(dataset: str = CONLL2003_DATASET, split: str = "test") -> list[Sentence]:
    """CoNLL-2003 from the Hugging Face Hub with the ``datasets`` library (IOB2 tags).

    Raises:
        DataUnavailable: ``datasets`` is not installed, the Hub cannot be reached (set ``HF_HUB_OFFLINE=1`` to
            use a copy in the local cache), or the data set cannot be loaded.
    """
    try:
        import datasets
    except ImportError:
        raise DataUnavailable("--conll2003 needs the datasets library: install the eval extra (make setup, or "
                              "pip install -e '.[eval]'), or pass a CoNLL-format file") from None
    from huggingface_hub import HfApi, constants

    if not constants.HF_HUB_OFFLINE:
        # A quick probe: without it, an unreachable Hub costs datasets' retries (half a minute) and their logs.
        try:
            HfApi().dataset_info(dataset, timeout=HUB_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 (any failure here means "not from the Hub")
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise DataUnavailable(f"cannot reach {dataset!r} on the Hugging Face Hub ({reason}): pass a "
                                  "CoNLL-format file, or set HF_HUB_OFFLINE=1 if it is in the local cache") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        rows = datasets.load_dataset(dataset, split=split)
    except Exception as error:  # noqa: BLE001
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise DataUnavailable(f"cannot load {dataset!r} split {split!r}: {reason}") from None
    feature = rows.features.get("ner_tags")
    names = getattr(getattr(feature, "feature", None), "names", None) or CONLL2003_TAGS
    sentences = []
    for row in rows:
        tags = tuple(tag if isinstance(tag, str) else names[tag] for tag in row["ner_tags"])
        if row["tokens"] and row["tokens"][0] != DOCSTART:
            sentences.append(Sentence(tuple(row["tokens"]), tags))
    return sentences


def token_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` of each token in the tokens joined by single spaces (:attr:`Sentence.text`)."""
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return spans


def to_iob1(tags: Sequence[str]) -> list[str]:
    """IOB2 tags in IOB1: ``B-`` only where an entity directly follows one of the same type."""
    converted, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        converted.append(tag)
        previous = tag
    return converted


def tags_from_entities(spans: Sequence[tuple[int, int]], entities: Iterable[dict],
                       scheme: Scheme = Scheme.IOB2) -> list[str]:
    """Tags of the tokens at ``spans`` from the pipeline's entities (``entity_group``, ``start``, ``end``).

    A token that overlaps an entity takes the entity's type, even if the entity covers only part of it (a word the
    tokenizer split, ``Berlin`` in ``Berlin-based``); a token that overlaps several takes the first. The first
    token of each entity gets ``B-``, the others ``I-``; in IOB1, ``B-`` stays only between two entities of one
    type.
    """
    owner: list[int | None] = [None] * len(spans)
    kinds: list[str] = []
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        if entity["end"] <= entity["start"]:
            continue
        kinds.append(entity["entity_group"])
        for index, (start, end) in enumerate(spans):
            if owner[index] is None and start < entity["end"] and entity["start"] < end:
                owner[index] = len(kinds) - 1
    tags = []
    for index, number in enumerate(owner):
        if number is None:
            tags.append("O")
        else:
            prefix = "I-" if index > 0 and owner[index - 1] == number else "B-"
            tags.append(prefix + kinds[number])
    return to_iob1(tags) if scheme is Scheme.IOB1 else tags

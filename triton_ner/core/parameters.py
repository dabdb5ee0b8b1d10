"""Per-request options, read from Triton request parameters, validated with messages that name the problem."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from triton_ner.core.errors import InvalidInput


class Strategy(str, enum.Enum):
    """The pipeline's ``aggregation_strategy`` values."""

    NONE = "none"
    SIMPLE = "simple"
    FIRST = "first"
    AVERAGE = "average"
    MAX = "max"


@dataclass(frozen=True)
class RequestOptions:
    """What a request may choose, with the pipeline's defaults except ``simple`` grouping."""

    aggregation_strategy: Strategy = Strategy.SIMPLE
    ignore_labels: tuple[str, ...] = ("O",)
    stride: int | None = None  # tokens shared by consecutive windows of a long text; None: the server default


def _strategy(value: Any) -> Strategy:
    try:
        return Strategy(str(value).lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Strategy)
        raise InvalidInput(f"aggregation_strategy {value!r} is not one of: {allowed}") from None


def _labels(value: Any) -> tuple[str, ...]:
    """A JSON list of strings, or labels separated by commas (``""`` for none)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):  # JSON, though not always a list
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput(f"ignore_labels {value!r} is not a JSON list of strings") from None
    if isinstance(value, str):
        return tuple(label.strip() for label in value.split(",") if label.strip())
    if isinstance(value, list) and all(isinstance(label, str) for label in value):
        return tuple(value)
    raise InvalidInput(f"ignore_labels {value!r} must be a JSON list of strings or labels separated by commas")


def _stride(value: Any) -> int:
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInput(f"stride {value!r} must be a whole number of tokens, 0 or more")


_READERS: dict[str, Callable[[Any], Any]] = {"aggregation_strategy": _strategy, "ignore_labels": _labels,
                                             "stride": _stride}


def parse(parameters: dict[str, Any]) -> RequestOptions:
    """Options from a request's parameters.

    Raises:
        InvalidInput: A parameter this model does not know (a mistyped name would otherwise be ignored
            silently, and the client would get the defaults it meant to change), or a value out of range.
    """
    unknown = sorted(set(parameters) - set(_READERS))
    if unknown:
        raise InvalidInput(f"unknown request parameter {unknown[0]!r}; the parameters are: {', '.join(_READERS)}")
    return RequestOptions(**{key: _READERS[key](value) for key, value in parameters.items()})

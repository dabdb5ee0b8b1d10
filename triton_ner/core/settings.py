"""The settings of the two Python-backend steps, typed, one name per limit.

The export writes them into each step's ``config.pbtxt`` ``parameters`` (:func:`to_parameters`, one flat string
per field, nested settings flattened); the step reads them back typed (:func:`from_parameters`).
"""

from __future__ import annotations

import enum
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass

from triton_ner.core.batching import MAX_TOKENS_PER_RUN, PAD_LENGTHS
from triton_ner.core.errors import ConfigurationError
from triton_ner.core.variants import Precision

S = typing.TypeVar("S")


@dataclass(frozen=True)
class Limits:
    """What one request may cost at the text step, and how it calls the model step.

    Attributes:
        max_windows: Most windows one request may need.
        max_tokens_per_request: Most tokens of one request's windows (special tokens and overlaps included).
        pad_lengths: The padded lengths windows are grouped by, each group one model call (or several).
        max_rows_per_call: Most windows in one model call.
        max_tokens_per_call: Most padded tokens in one model call; 0: only ``max_rows_per_call`` bounds it (NVIDIA's
            backends take a call of at most their ``max_batch_size`` rows whole).
    """

    max_windows: int
    max_tokens_per_request: int
    pad_lengths: tuple[int, ...] = PAD_LENGTHS
    max_rows_per_call: int = 1024
    max_tokens_per_call: int = 0


@dataclass(frozen=True)
class TextStepSettings:
    """``ner_text``: its tokenizer, its largest text, its limits and the model step it calls."""

    tokenizer_dir: str  # relative to the repository's root
    max_text_bytes: int
    limits: Limits
    model_name: str
    model_inputs: tuple[str, ...]  # the model step's token ids and mask, in that order
    model_output: str


@dataclass(frozen=True)
class ModelStepSettings:
    """``ner_model`` in the project's runner: its file, how it runs, its limits."""

    model_file: str  # in the model's version folder
    precision: Precision  # what the runner casts a TorchScript file to, or runs OpenVINO in (Variant.run_precision)
    tokenizer_dir: str  # for the vocabulary size its inputs are checked against
    intra_op_threads: int = 0  # 0: chosen from the cores and the instances (python_backend.instance_threads)
    max_tokens_per_run: int = MAX_TOKENS_PER_RUN
    max_sequence_length: int = PAD_LENGTHS[-1]
    max_rows_per_graph: int = 0  # above 0: fixed shapes up to this many rows, CUDA graphs on a GPU


def to_parameters(settings: object) -> dict[str, str]:
    """The settings as ``config.pbtxt`` parameters: ``{field: text}``, nested settings flattened."""
    found: dict[str, str] = {}
    for field in fields(settings):  # type: ignore[arg-type]  # a settings dataclass
        value = getattr(settings, field.name)
        if is_dataclass(value) and not isinstance(value, type):
            found |= to_parameters(value)
        elif isinstance(value, tuple):
            found[field.name] = ",".join(map(str, value))
        elif isinstance(value, enum.Enum):
            found[field.name] = str(value.value)
        else:
            found[field.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return found


def from_parameters(kind: type[S], parameters: dict[str, str]) -> S:
    """``kind`` (one of the settings above) from a config's parameters.

    Raises:
        ConfigurationError: A parameter without a default is missing, or a value is not of its setting's type;
            the error names the setting.
    """
    hints = typing.get_type_hints(kind)
    values: dict[str, object] = {}
    for field in fields(kind):  # type: ignore[arg-type]  # a settings dataclass
        hint = hints[field.name]
        if isinstance(hint, type) and is_dataclass(hint):
            values[field.name] = from_parameters(hint, parameters)
        elif field.name in parameters:
            values[field.name] = _parse(field.name, hint, parameters[field.name])
        elif field.default is MISSING:
            raise ConfigurationError(field.name, "the config has no such parameter")
    return kind(**values)


def _parse(name: str, hint: typing.Any, text: str) -> object:
    try:
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            return tuple(item(part) for part in text.split(",") if part)
        if hint is bool:
            if text not in ("true", "false"):
                raise ValueError("not true or false")
            return text == "true"
        return hint(text)
    except ValueError:
        raise ConfigurationError(name, f"{text!r} is not {_type_name(hint)}") from None


def _type_name(hint: typing.Any) -> str:
    if typing.get_origin(hint) is tuple:
        return f"a list of {_plural(typing.get_args(hint)[0])} separated by commas"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return f"one of {', '.join(str(member.value) for member in hint)}"
    return {bool: "true or false", int: "a whole number", float: "a number"}.get(hint, f"a {hint.__name__}")


def _plural(hint: typing.Any) -> str:
    return {int: "whole numbers", float: "numbers"}.get(hint, f"{hint.__name__} values")

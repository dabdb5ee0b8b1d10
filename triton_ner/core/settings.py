"""The settings of the two Python-backend steps, typed, one name per limit.

The export writes them into each step's ``config.pbtxt`` ``parameters`` (:func:`to_parameters`, one flat string
per field, nested settings flattened); the step reads them back typed (:func:`from_parameters`).
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass

from triton_ner.core.batching import MAX_TOKENS_PER_RUN, PAD_LENGTHS


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
    precision: str  # what the runner casts a TorchScript file to, or runs OpenVINO in (runners.RunPrecision)
    tokenizer_dir: str  # for the vocabulary size its inputs are checked against
    intra_op_threads: int = 0  # 0: chosen from the cores and the instances (python_backend.instance_threads)
    max_tokens_per_run: int = MAX_TOKENS_PER_RUN
    max_sequence_length: int = PAD_LENGTHS[-1]
    max_rows_per_graph: int = 0  # above 0: fixed shapes up to this many rows, CUDA graphs on a GPU


def to_parameters(settings) -> dict[str, str]:
    """The settings as ``config.pbtxt`` parameters: ``{field: text}``, nested settings flattened."""
    found: dict[str, str] = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        if is_dataclass(value):
            found |= to_parameters(value)
        elif isinstance(value, tuple):
            found[field.name] = ",".join(map(str, value))
        else:
            found[field.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return found


def from_parameters(kind: type, parameters: dict[str, str]):
    """``kind`` (one of the settings above) from a config's parameters; a missing parameter without a default is a
    ``KeyError`` naming it."""
    hints = typing.get_type_hints(kind)
    values = {}
    for field in fields(kind):
        hint = hints[field.name]
        if is_dataclass(hint):
            values[field.name] = from_parameters(hint, parameters)
        elif field.name in parameters:
            values[field.name] = _parse(hint, parameters[field.name])
        elif field.default is MISSING:
            raise KeyError(f"the config has no parameter {field.name!r}")
    return kind(**values)


def _parse(hint, text: str):
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(item(part) for part in text.split(",") if part)
    if hint is bool:
        return text == "true"
    return hint(text)

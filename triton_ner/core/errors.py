"""The serving side's errors: one root, :class:`ServingError`, each error carrying the Triton code it maps to.

A step answers a failed request with the error's own :attr:`~ServingError.code`
(:func:`triton_ner.python_backend.error_response` reads it; Triton turns it into gRPC ``INVALID_ARGUMENT``, HTTP
400 and so on). Any other exception in a step is a bug: ``INTERNAL``, with its traceback in the server's log. The
client's errors are :mod:`triton_ner.client.errors`.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """Triton's error codes, by the names of ``triton_python_backend_utils.TritonError``'s constants."""

    UNKNOWN = "UNKNOWN"
    INTERNAL = "INTERNAL"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ARG = "INVALID_ARG"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNSUPPORTED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CANCELLED = "CANCELLED"


class ServingError(Exception):
    """The root of the serving side's errors; :attr:`code` is the Triton code a response with it gets."""

    code: Code = Code.INTERNAL


class InvalidInput(ServingError):
    """A request the server refuses: its message goes back to the client as ``INVALID_ARGUMENT``."""

    code = Code.INVALID_ARG


class Stopped(ServingError):
    """A request cancelled by its client, or past its timeout, before all its rows ran."""

    code = Code.CANCELLED


class ConfigurationError(ServingError):
    """A step's setting is missing or bad (a ``config.pbtxt`` parameter, or what it names): the model does not
    load, and the message names the setting."""

    code = Code.INVALID_ARG

    def __init__(self, setting: str, problem: str):
        super().__init__(f"setting {setting!r}: {problem}")
        self.setting = setting


class ModelStepError(ServingError):
    """The model step, called from the text step, answered with an error: it goes back to the client with the
    model step's own code and message."""

    def __init__(self, message: str, code: Code):
        super().__init__(message)
        self.code = code


class ServerError(ServingError):
    """The server could not be started: the message says why in one line; :attr:`log` holds Triton's last lines."""

    code = Code.UNAVAILABLE

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log

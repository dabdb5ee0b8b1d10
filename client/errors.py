"""Typed errors of the client, the mapping from tritonclient's and the network's exceptions, and the retry delays.

Both transports of both clients fail in their own way: tritonclient raises ``InferenceServerException`` with a
gRPC status (``StatusCode.UNAVAILABLE``) or an HTTP status (``400``), the HTTP libraries raise ``OSError``,
``TimeoutError`` and their own connection errors. :func:`typed_error` turns all of them into one of the classes
below, so a caller catches what went wrong, not how it was transported.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import re
from collections.abc import Callable

from tritonclient.utils import InferenceServerException


class ClientError(RuntimeError):
    """A failed request, with the server's message. Base of every error the client raises."""

    retryable = False


class ServerUnreachable(ClientError):
    """The server cannot be reached or cannot take requests now (gRPC ``UNAVAILABLE``, HTTP 503, a refused or
    dropped connection). The only failure retried with backoff."""

    retryable = True


class ServerBusy(ClientError):
    """The server is up but refused the request for now: a queue of the model's steps is full, or the request
    waited in it longer than the queue allows (Triton's queue policy, ``UNAVAILABLE`` / HTTP 503 with its own
    message). Retried with backoff, like :class:`ServerUnreachable`, but not mistaken for it."""

    retryable = True


class ModelNotReady(ClientError):
    """The server answers but does not serve the model (not loaded, unknown, or still loading)."""


class InvalidArgument(ClientError):
    """The server refused the request (gRPC ``INVALID_ARGUMENT``, HTTP 400); the message is the server's."""


class DeadlineExceeded(ClientError):
    """No answer within the client's timeout."""


class AccessDenied(ClientError):
    """The server restricts the API and the request lacks the header it expects (Triton's restricted APIs)."""


PROTOCOL_NAMES = {"grpc": "gRPC", "http": "HTTP"}
# Triton answers a restricted gRPC API without its header with UNAVAILABLE; the message tells it apart.
_RESTRICTED = re.compile(r"is restricted, expecting header")
_TEXT_INDEX = re.compile(r"\bTEXT\[(\d+)\]")
# Triton's queue policy refusing a request: the queue is full, or the request's time in it ran out.
_QUEUE_REFUSAL = re.compile(r"Exceeds maximum queue size|Request timeout expired")


def server_name(url: str, protocol: str) -> str:
    """``localhost:8001 (gRPC)``: the server as error messages name it."""
    return f"{url} ({PROTOCOL_NAMES.get(protocol, protocol)})"


def renumber(message: str, first: int) -> str:
    """The server's message with ``TEXT[i]`` counted from the caller's first text, not the request's.

    A request carries one batch of the caller's texts; ``TEXT[1]`` of the batch starting at text 64 is text 65.
    """
    if not first:
        return message
    return _TEXT_INDEX.sub(lambda match: f"TEXT[{int(match[1]) + first}]", message)


def _connection_errors() -> tuple[type[BaseException], ...]:
    # aiohttp is imported by tritonclient.http.aio only; a client that never used it cannot see its errors.
    errors: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
    try:
        import aiohttp
    except ImportError:
        return errors
    return (*errors, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


def typed_error(error: BaseException, url: str, protocol: str, model: str, timeout: float | None,
                first: int = 0) -> ClientError | None:
    """The :class:`ClientError` that says what ``error`` means, or None if it is not a request failure.

    Args:
        error: What tritonclient or the network library raised.
        url: The server, for the message.
        protocol: ``"grpc"`` or ``"http"``, for the message.
        model: The model asked for, for the message.
        timeout: The client's timeout in seconds, for the message.
        first: Index of the request's first text among the caller's texts (see :func:`renumber`).
    """
    where = server_name(url, protocol)
    late = DeadlineExceeded(f"no answer from {where} within {timeout:g} s" if timeout else
                            f"no answer from {where} before the deadline")
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "").removeprefix("StatusCode.")
        message = renumber(" ".join((error.message() or str(error)).split()), first)
        if status in ("INVALID_ARGUMENT", "400"):
            return InvalidArgument(message)
        if status in ("NOT_FOUND", "404") or "is not ready" in message or "no available versions" in message:
            return ModelNotReady(f"model {model!r} is not ready on {where}: {message}")
        if status in ("PERMISSION_DENIED", "UNAUTHENTICATED", "403") or _RESTRICTED.search(message):
            return AccessDenied(f"{where} refused the request: {message}")
        if status in ("UNAVAILABLE", "503") and _QUEUE_REFUSAL.search(message):
            return ServerBusy(f"{where} is busy and refused the request: {message}")
        if status in ("UNAVAILABLE", "503"):
            return ServerUnreachable(f"cannot reach {where}: {message}")
        if status == "DEADLINE_EXCEEDED":
            return late
        return ClientError(f"{where}: {status + ': ' if status else ''}{message}")
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):  # before OSError, of which the first is a subclass
        return late
    if isinstance(error, _connection_errors()):
        detail = " ".join(str(error).split()) or type(error).__name__
        return ServerUnreachable(f"cannot reach {where}: {detail}")
    return None


def backoff_delay(retry: int, base: float = 0.5, cap: float = 8.0, jitter: Callable[[], float] = random.random,
                  ) -> float:
    """Seconds to wait before retry number ``retry`` (0 first): doubling from ``base`` up to ``cap``, scaled by
    a random 50-100 %.

    The random half spreads the retries of many clients that failed together, so they do not all come back at
    the same instant.
    """
    return min(cap, base * 2 ** retry) * (0.5 + jitter() / 2)

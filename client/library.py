"""``NerClient`` (and what ``AsyncNerClient`` shares with it): texts in, the transformers pipeline's entity lists
out, over Triton's gRPC or HTTP API, in batches of a configurable size, with retries on unavailability and typed
errors; over several servers, round-robin with failover (:mod:`triton_ner.client.balancing`)."""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum
from itertools import islice
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np

from triton_ner.client.balancing import Balancer
from triton_ner.client.errors import ClientError, ModelNotReady, backoff_delay, server_name, typed_error
from triton_ner.core import names

log = logging.getLogger(__name__)

Entities = list[dict[str, Any]]


class Protocol(str, Enum):
    GRPC = "grpc"
    HTTP = "http"


PROTOCOLS = tuple(p.value for p in Protocol)
DEFAULT_PORTS = {Protocol.GRPC: names.GRPC_PORT, Protocol.HTTP: names.HTTP_PORT}


def batches(texts: Iterable[str], size: int | None) -> Iterator[tuple[int, list[str]]]:
    """Consecutive batches of at most ``size`` texts (all in one if ``size`` is None), in input order.

    Yields:
        ``(index of the batch's first text, texts)``; ``texts`` is read lazily, one batch ahead at most.
    """
    iterator = iter(texts)
    first = 0
    while batch := list(islice(iterator, size)):
        yield first, batch
        first += len(batch)


def request_parameters(aggregation_strategy: str | Enum | None = None,
                       ignore_labels: Iterable[str] | str | None = None,
                       stride: int | None = None) -> dict[str, Any]:
    """Triton request parameters of the ``ner`` ensemble; options left at None take the server's defaults."""
    parameters: dict[str, Any] = {}
    if aggregation_strategy is not None:
        parameters["aggregation_strategy"] = (aggregation_strategy.value if isinstance(aggregation_strategy, Enum)
                                              else aggregation_strategy)
    if ignore_labels is not None:
        # A string is already the server's form ("O,MISC" or a JSON list); list("O,MISC") would split letters.
        parameters["ignore_labels"] = (ignore_labels if isinstance(ignore_labels, str)
                                       else json.dumps(list(ignore_labels)))
    if stride is not None:
        parameters["stride"] = stride
    return parameters


class _BaseClient:
    """What both clients share: validated settings, request tensors, decoding, and the retry decision. The
    arguments are :class:`NerClient`'s; ``batch_size`` and ``concurrency`` default to the class's own."""

    BATCH_SIZE: int | None = None
    CONCURRENCY = 1

    def __init__(self, url: str | Sequence[str] | None = None, protocol: str = "grpc", model: str = names.ENSEMBLE,
                 timeout: float | None = 60.0, *, retries: int = 3, backoff: float = 0.5,
                 batch_size: int | None | EllipsisType = ..., concurrency: int | EllipsisType = ..., ssl: bool = False,
                 root_certificates: str | Path | None = None, private_key: str | Path | None = None,
                 certificate_chain: str | Path | None = None, headers: dict[str, str] | None = None):
        batch_size = self.BATCH_SIZE if batch_size is ... else batch_size
        concurrency = self.CONCURRENCY if concurrency is ... else concurrency
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one of: {', '.join(PROTOCOLS)}")
        self.protocol = Protocol(protocol)
        target = url or f"localhost:{DEFAULT_PORTS[self.protocol]}"
        self.url = target if isinstance(target, str) else ",".join(target)
        self.balancer = Balancer(target)  # one address or several: requests in turn, a retry to the next one
        for name, value, least in (("batch_size", batch_size, 1), ("concurrency", concurrency, 1),
                                   ("retries", retries, 0)):
            if value is not None and value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be more than 0 seconds, not {timeout}")
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self.concurrency = concurrency
        # gRPC metadata keys must be lowercase; HTTP header names ignore case.
        self.headers = {name.lower(): value for name, value in headers.items()} if headers else None
        certificates = {"root_certificates": root_certificates, "private_key": private_key,
                        "certificate_chain": certificate_chain}
        # A certificate means TLS; requiring ssl=True as well would only turn a forgotten flag into a failure.
        self.ssl = ssl or any(certificates.values())
        if self.ssl and self.protocol is Protocol.HTTP:
            raise ValueError("TLS options apply to gRPC only: Triton's HTTP endpoint serves plain HTTP")
        self._tls = {name: str(value) for name, value in certificates.items() if value} if self.ssl else {}
        if self.protocol is Protocol.GRPC:
            import tritonclient.grpc as tensors
        else:
            import tritonclient.http as tensors
        self._tensors = tensors
        self._closed = False
        self._open()

    def _open(self) -> None:
        """The client's own state (connections), once the settings are checked."""

    # The tritonclient modules of this client's kind, and its HTTP client's connection settings.
    _MODULES = {Protocol.GRPC: "tritonclient.grpc", Protocol.HTTP: "tritonclient.http"}

    def _http_options(self) -> dict[str, Any]:
        return {"connection_timeout": self.timeout, "network_timeout": self.timeout}

    def _new_connection(self, address: str) -> Any:
        """A tritonclient ``InferenceServerClient`` of this client's protocol on ``address``."""
        options = {"ssl": self.ssl, **self._tls} if self.protocol is Protocol.GRPC else self._http_options()
        return importlib.import_module(self._MODULES[self.protocol]).InferenceServerClient(address, **options)

    def _call_options(self) -> dict[str, Any]:
        # gRPC takes the deadline per call; tritonclient's HTTP clients take it when connecting.
        options: dict[str, Any] = {"headers": self.headers}
        if self.protocol is Protocol.GRPC:
            options["client_timeout"] = self.timeout
        return options

    def _infer_options(self) -> dict[str, Any]:
        # Triton's request timeout (microseconds) as well: the server's queues refuse, and its model step stops
        # between runs, a request whose client has stopped waiting, instead of working on for nobody.
        options = self._call_options()
        if self.timeout is not None:
            options["timeout"] = int(self.timeout * 1e6)
        return options

    def _request(self, texts: Sequence[str]) -> tuple[list, list]:
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, not {type(text).__name__}")
        tensor = self._tensors.InferInput(names.TEXT, [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array([text.encode("utf-8") for text in texts], dtype=np.object_))
        return [tensor], [self._tensors.InferRequestedOutput(names.ENTITIES)]

    @staticmethod
    def _entities(result: Any) -> list[Entities]:
        return [json.loads(document) for document in result.as_numpy(names.ENTITIES)]

    def _retry_delay(self, error: Exception, attempt: int, first: int, address: str) -> float:
        """Seconds to wait before retrying after ``error`` on ``attempt`` (1 first) at ``address``, or raise the
        typed error. No wait when another server is there to take the retry."""
        failure = typed_error(error, address, self.protocol.value, self.model, self.timeout, first)
        if failure is None:
            raise error
        # A server that is stopping unloads its models before it closes its ports: among several, one that does
        # not serve the model now is skipped like an unreachable one while another has not failed too.
        skip = failure.retryable or (isinstance(failure, ModelNotReady) and len(self.balancer.addresses) > 1)
        if skip:
            self.balancer.failed(address)
        if not (failure.retryable or skip and self.balancer.available()) or attempt > self.retries:
            if attempt > 1:
                failure = type(failure)(f"{failure} (gave up after {attempt} attempts)")
            raise failure from None
        delay = 0.0 if self.balancer.available() else backoff_delay(attempt - 1, self.backoff)
        log.info("%s; retry %d of %d in %.2f s", failure, attempt, self.retries, delay)
        return delay

    def _not_ready(self) -> ModelNotReady:
        return ModelNotReady(f"model {self.model!r} is not ready on {server_name(self.url, self.protocol.value)}")

    def _check_open(self) -> None:
        if self._closed:
            raise ClientError("the client is closed")


class NerClient(_BaseClient):
    """A connection to a Triton server serving the ``ner`` ensemble; use as a context manager.

    Args:
        url: ``host:port`` of the server's gRPC or HTTP endpoint; default ``localhost:8001`` (gRPC) or
            ``localhost:8000`` (HTTP). Several servers: a list, ``"host:port,host:port"`` or
            ``"dns:///name:port"`` (every address of the name, e.g. a Kubernetes headless Service, resolved again
            every 30 s); requests go to them in turn, and a request that finds one unreachable is retried on the
            next at once (see :class:`~triton_ner.client.balancing.Balancer`).
        protocol: ``"grpc"`` or ``"http"``.
        model: Name of the ensemble.
        timeout: Seconds one request may take (None: no limit); beyond it :class:`DeadlineExceeded`. Sent to the
            server too (Triton's request timeout), which then stops working on the request.
        retries: Retries of a request that failed with :class:`ServerUnreachable` or :class:`ServerBusy` (a full
            queue), the same request again so no text is answered twice, waiting ``backoff`` seconds
            and twice as long each time (at most 8 s) unless another server can take it. Other failures are
            raised at once.
        backoff: Seconds before the first retry.
        batch_size: Texts per request; None (the default) sends each :meth:`predict` call as one request (the
            server refuses a request of more than 1,024 windows, about 1,024 short texts).
        concurrency: Requests in flight at once (threads); 1 (the default) sends them one after the other.
        ssl: Use TLS (gRPC). Implied by any certificate below.
        root_certificates: PEM file of the certificate authority that signed the server's certificate (default:
            the system's).
        private_key: PEM file of the client's private key, for mutual TLS.
        certificate_chain: PEM file of the client's certificate, for mutual TLS.
        headers: Sent with every request, e.g. the key of a restricted API (over gRPC, Triton expects
            ``triton-grpc-protocol-<key>``; over HTTP, ``<key>``).

    Raises:
        ValueError: An unknown protocol, a URL with a scheme, TLS over HTTP, or a setting out of range.
    """

    BATCH_SIZE = None
    CONCURRENCY = 1

    def _open(self) -> None:
        # tritonclient's gRPC client is thread-safe: one per server, shared; its HTTP client is not: one per server
        # and thread.
        self._connections: list = []
        self._shared: dict[str, Any] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(self.concurrency, "ner-client") if self.concurrency > 1 else None
        # Now, so that a missing certificate file fails here and not at the first request.
        self._connection(self.balancer.addresses[0])

    def _connection(self, address: str) -> Any:
        self._check_open()
        with self._lock:
            connections = self._shared if self.protocol is Protocol.GRPC else vars(self._local)
            connection = connections.get(address)
            if connection is None:
                connection = connections[address] = self._new_connection(address)
                self._connections.append(connection)
        return connection

    def _retrying(self, call: Callable[[Any], Any], first: int = 0) -> Any:
        """``call(connection)`` on the next server, again on the next after a retryable failure."""
        for attempt in itertools.count(1):
            address = self.balancer.pick()
            try:
                return call(self._connection(address))
            except Exception as error:  # noqa: BLE001 (what is not a request failure is raised again)
                delay = self._retry_delay(error, attempt, first, address)
            time.sleep(delay)

    def _infer(self, texts: list[str], parameters: dict[str, Any], first: int) -> list[Entities]:
        inputs, outputs = self._request(texts)
        result = self._retrying(lambda connection: connection.infer(
            self.model, inputs, outputs=outputs, parameters=parameters or None, **self._infer_options()), first)
        return self._entities(result)

    def predict(self, texts: str | Sequence[str], aggregation_strategy: str | None = None,
                ignore_labels: Iterable[str] | None = None,
                stride: int | None = None) -> Entities | list[Entities]:
        """Entities of each text, as ``pipeline("ner", aggregation_strategy=..., stride=...)`` returns them.

        A single string gives one list of entities; a sequence of strings gives one list per text, in order.
        Options left at None take the server's defaults (``simple``, ``["O"]``, stride 128 for long texts).

        Raises:
            ServerUnreachable: No connection, after the retries.
            ServerBusy: The server's queues stayed full, after the retries.
            ModelNotReady: The server does not serve the model.
            InvalidArgument: The server refused the request; the message is the server's.
            DeadlineExceeded: No answer within ``timeout``.
        """
        single = isinstance(texts, str)
        results = list(self.predict_iter([texts] if isinstance(texts, str) else texts, aggregation_strategy,
                                         ignore_labels, stride))
        return results[0] if single else results

    def predict_iter(self, texts: Iterable[str], aggregation_strategy: str | None = None,
                     ignore_labels: Iterable[str] | None = None, stride: int | None = None) -> Iterator[Entities]:
        """Like :meth:`predict` on an iterable of texts, yielding each text's entities in input order.

        ``texts`` is read as the requests go out, so a large file can stream through with at most
        ``concurrency`` batches in memory.
        """
        parameters = request_parameters(aggregation_strategy, ignore_labels, stride)
        if self._executor is None:
            for first, batch in batches(texts, self.batch_size):
                yield from self._infer(batch, parameters, first)
            return
        pending: deque[Future] = deque()
        try:
            for first, batch in batches(texts, self.batch_size):
                pending.append(self._executor.submit(self._infer, batch, parameters, first))
                if len(pending) == self.concurrency:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def check(self) -> None:
        """Return if the server serves the model; raise :class:`ServerUnreachable` or :class:`ModelNotReady`."""
        if not self._retrying(lambda connection: connection.is_model_ready(self.model, **self._call_options())):
            raise self._not_ready()

    def close(self) -> None:
        """Wait for the requests in flight and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
        # Drop every reference as each connection closes: tritonclient closes again in __del__, and under gevent
        # (Locust) a gRPC channel finalized at interpreter exit, with no event loop left, blocks the process.
        connections, self._connections, self._local, self._shared = self._connections, [], threading.local(), {}
        while connections:
            connections.pop().close()

    def __enter__(self) -> NerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()



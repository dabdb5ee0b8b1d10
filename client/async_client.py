"""The asyncio client of the served ``ner`` ensemble (:class:`AsyncNerClient`): what :class:`NerClient` does, for
an event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from triton_ner.client.library import Entities, Protocol, _BaseClient, batches, request_parameters


class AsyncNerClient(_BaseClient):
    """:class:`NerClient` for asyncio, over ``tritonclient.grpc.aio`` or ``tritonclient.http.aio``.

    Same arguments as :class:`NerClient`, with defaults for large inputs: batches of 64 texts, 4 requests in
    flight. Use as an async context manager; the connection opens on first use, inside the event loop.
    """

    BATCH_SIZE = 64
    CONCURRENCY = 4

    def _open(self) -> None:
        self._clients: dict[str, Any] = {}  # one per server

    _MODULES = {Protocol.GRPC: "tritonclient.grpc.aio", Protocol.HTTP: "tritonclient.http.aio"}

    def _http_options(self) -> dict[str, Any]:
        return {"conn_limit": self.concurrency, "conn_timeout": self.timeout}

    def _connection(self, address: str) -> Any:
        self._check_open()
        if address not in self._clients:
            self._clients[address] = self._new_connection(address)
        return self._clients[address]

    async def _retrying(self, call: Callable[[Any], Any], first: int = 0) -> Any:
        """See :meth:`NerClient._retrying`."""
        for attempt in itertools.count(1):
            address = self.balancer.pick()
            try:
                return await call(self._connection(address))
            except Exception as error:  # noqa: BLE001 (what is not a request failure is raised again)
                delay = self._retry_delay(error, attempt, first, address)
            await asyncio.sleep(delay)

    async def _infer(self, texts: list[str], parameters: dict[str, Any], first: int) -> list[Entities]:
        inputs, outputs = self._request(texts)
        result = await self._retrying(lambda connection: connection.infer(
            self.model, inputs, outputs=outputs, parameters=parameters or None, **self._infer_options()), first)
        return self._entities(result)

    async def predict(self, texts: str | Sequence[str], aggregation_strategy: str | None = None,
                      ignore_labels: Iterable[str] | None = None,
                      stride: int | None = None) -> Entities | list[Entities]:
        """See :meth:`NerClient.predict`; at most ``concurrency`` requests run at once."""
        single = isinstance(texts, str)
        results = [entities async for entities in self.predict_iter([texts] if isinstance(texts, str) else texts,
                                                                    aggregation_strategy, ignore_labels, stride)]
        return results[0] if single else results

    async def predict_iter(self, texts: Iterable[str], aggregation_strategy: str | None = None,
                           ignore_labels: Iterable[str] | None = None,
                           stride: int | None = None) -> AsyncIterator[Entities]:
        """See :meth:`NerClient.predict_iter`: entities of each text in input order, ``concurrency`` requests
        in flight; a failed request cancels the others."""
        parameters = request_parameters(aggregation_strategy, ignore_labels, stride)
        pending: deque[asyncio.Task] = deque()
        try:
            for first, batch in batches(texts, self.batch_size):
                pending.append(asyncio.ensure_future(self._infer(batch, parameters, first)))
                if len(pending) == self.concurrency:
                    for entities in await pending.popleft():
                        yield entities
            while pending:
                for entities in await pending.popleft():
                    yield entities
        finally:
            for task in pending:
                task.cancel()
            # Collect the cancelled and failed ones, so that none is reported as never retrieved.
            await asyncio.gather(*pending, return_exceptions=True)

    async def check(self) -> None:
        """See :meth:`NerClient.check`."""
        if not await self._retrying(lambda connection: connection.is_model_ready(self.model,
                                                                                **self._call_options())):
            raise self._not_ready()

    async def close(self) -> None:
        """Close the connection."""
        self._closed = True
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    async def __aenter__(self) -> AsyncNerClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

"""``NerClient``: texts in, the transformers pipeline's entity lists out, over Triton's gRPC or HTTP API."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from ner import names

PROTOCOLS = ("grpc", "http")


class ClientError(RuntimeError):
    """A failed request, with the server's message."""


class NerClient:
    """A connection to a Triton server serving the ``ner`` ensemble.

    Args:
        url: ``host:port`` of the server's gRPC (default 8001) or HTTP (default 8000) endpoint.
        protocol: ``"grpc"`` or ``"http"``.
        model: Name of the ensemble.
        timeout: Seconds a request may take.
    """

    def __init__(self, url: str = "localhost:8001", protocol: str = "grpc", model: str = names.ENSEMBLE,
                 timeout: float | None = 60.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one of: {', '.join(PROTOCOLS)}")
        self.url = url
        self.protocol = protocol
        self.model = model
        self.timeout = timeout
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        self._module = module
        self._client = module.InferenceServerClient(url)

    def predict(self, texts: str | list[str], aggregation_strategy: str | None = None,
                ignore_labels: list[str] | None = None, stride: int | None = None) -> list[dict] | list[list[dict]]:
        """Entities of each text, as ``pipeline("ner", aggregation_strategy=..., stride=...)`` returns them.

        A single string gives one list of entities; a list of strings gives one list per text, in order.
        Options left at None take the server's defaults (``simple``, ``["O"]``, stride 128 for long texts).
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        parameters: dict[str, Any] = {}
        if aggregation_strategy is not None:
            parameters["aggregation_strategy"] = aggregation_strategy
        if ignore_labels is not None:
            parameters["ignore_labels"] = json.dumps(list(ignore_labels))
        if stride is not None:
            parameters["stride"] = stride
        tensor = self._module.InferInput(names.TEXT, [len(batch)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode("utf-8") for t in batch], dtype=np.object_))
        output = self._module.InferRequestedOutput(names.ENTITIES)
        timeout = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            result = self._client.infer(self.model, [tensor], outputs=[output], parameters=parameters or None,
                                        **timeout)
        except InferenceServerException as error:
            raise ClientError(error.message() or str(error)) from None
        except OSError as error:  # HTTP: the connection itself failed
            raise ClientError(f"cannot reach {self.url}: {error}") from None
        entities = [json.loads(document) for document in result.as_numpy(names.ENTITIES)]
        return entities[0] if single else entities

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> NerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Client of the served ``ner`` ensemble over gRPC or HTTP, returning what the transformers pipeline returns."""

from client.library import ClientError, NerClient

__all__ = ["ClientError", "NerClient"]

"""Client of the served ``ner`` ensemble over gRPC or HTTP, returning what the transformers pipeline returns."""

from triton_ner.client.async_client import AsyncNerClient
from triton_ner.client.errors import (
                                      AccessDenied,
                                      ClientError,
                                      DeadlineExceeded,
                                      InvalidArgument,
                                      ModelNotReady,
                                      ServerBusy,
                                      ServerUnreachable,
)
from triton_ner.client.library import NerClient

__all__ = ["AccessDenied", "AsyncNerClient", "ClientError", "DeadlineExceeded", "InvalidArgument", "ModelNotReady",
           "NerClient", "ServerBusy", "ServerUnreachable"]

"""The connection options every command that talks to the server shares (``ner-client``, ``ner-eval``), declared
once as typer parameter types, and the client settings they make."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from triton_ner.client.library import DEFAULT_PORTS, Protocol

Url = Annotated[str | None, typer.Option(
    help=f"host:port of the server (default: localhost:{DEFAULT_PORTS[Protocol.GRPC]} for grpc, "
         f"localhost:{DEFAULT_PORTS[Protocol.HTTP]} for http). Several servers, requests round-robin with failover: "
         "host:port,host:port or dns:///name:port (every address of the name, e.g. a Kubernetes headless Service).",
    show_default=False)]
ProtocolOption = Annotated[Protocol, typer.Option("--protocol", help="Triton API to use.")]
Concurrency = Annotated[int, typer.Option(min=1, help="Requests in flight at once.")]
Timeout = Annotated[float, typer.Option(min=0.001, help="Seconds one request may take.")]
Retries = Annotated[int, typer.Option(
    min=0, help="Retries, with backoff, of a request the server could not take (unavailable).")]
Ssl = Annotated[bool, typer.Option("--ssl", help="gRPC over TLS; implied by the certificate options.")]
RootCert = Annotated[Path | None, typer.Option(
    exists=True, dir_okay=False, help="PEM file of the CA that signed the server's certificate (default: the "
                                      "system's)", show_default=False)]
ClientCert = Annotated[Path | None, typer.Option(
    exists=True, dir_okay=False, help="PEM file of the client's certificate, for mutual TLS.")]
ClientKey = Annotated[Path | None, typer.Option(
    exists=True, dir_okay=False, help="PEM file of the client's private key, for mutual TLS.")]
Header = Annotated[list[str] | None, typer.Option(
    "--header", "-H", help="'Name: value' sent with every request, repeatable; e.g. the key of a restricted API "
                           "('triton-grpc-protocol-<key>: ...' over gRPC).", show_default=False)]


def parse_header(value: str) -> tuple[str, str]:
    """``("infer-key", "secret")`` from ``"infer-key: secret"``."""
    name, colon, content = value.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"--header {value!r} is not 'Name: value'")
    return name.strip(), content.strip()


def client_settings(url: str | None, protocol: Protocol, timeout: float, retries: int, batch_size: int,
                    concurrency: int, ssl: bool, root_cert: Path | None, client_cert: Path | None,
                    client_key: Path | None, header: list[str] | None) -> dict:
    """The keyword arguments of :class:`NerClient` / :class:`AsyncNerClient` from the shared options."""
    return {"url": url, "protocol": protocol.value, "timeout": timeout, "retries": retries, "batch_size": batch_size,
            "concurrency": concurrency, "ssl": ssl, "root_certificates": root_cert, "private_key": client_key,
            "certificate_chain": client_cert, "headers": dict(parse_header(h) for h in header or [])}

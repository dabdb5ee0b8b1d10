"""The connection options every command that talks to the server shares (``ner-client``, ``ner-eval``): one
:class:`Connection`, added to a command by :func:`connection_options`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from triton_ner import cli
from triton_ner.client.library import DEFAULT_PORTS, Protocol

_PEM = {"exists": True, "dir_okay": False}


@dataclass(frozen=True)
class Connection:
    """How a command reaches the server; each field is a command-line option (its metadata)."""

    url: str | None = field(default=None, metadata={
        "show_default": False,
        "help": f"host:port of the server (default: localhost:{DEFAULT_PORTS[Protocol.GRPC]} for grpc, "
                f"localhost:{DEFAULT_PORTS[Protocol.HTTP]} for http). Several servers, requests round-robin with "
                "failover: host:port,host:port or dns:///name:port (every address of the name, e.g. a Kubernetes "
                "headless Service)."})
    protocol: Protocol = field(default=Protocol.GRPC, metadata={"help": "Triton API to use."})
    concurrency: int = field(default=4, metadata={"min": 1, "help": "Requests in flight at once."})
    timeout: float = field(default=60.0, metadata={"min": 0.001, "help": "Seconds one request may take."})
    retries: int = field(default=3, metadata={
        "min": 0, "help": "Retries, with backoff, of a request the server could not take (unavailable)."})
    ssl: bool = field(default=False, metadata={
        "flags": ("--ssl",), "help": "gRPC over TLS; implied by the certificate options."})
    root_cert: Path | None = field(default=None, metadata={
        **_PEM, "show_default": False,
        "help": "PEM file of the CA that signed the server's certificate (default: the system's)"})
    client_cert: Path | None = field(default=None, metadata={
        **_PEM, "help": "PEM file of the client's certificate, for mutual TLS."})
    client_key: Path | None = field(default=None, metadata={
        **_PEM, "help": "PEM file of the client's private key, for mutual TLS."})
    header: list[str] | None = field(default=None, metadata={
        "flags": ("--header", "-H"), "show_default": False,
        "help": "'Name: value' sent with every request, repeatable; e.g. the key of a restricted API "
                "('triton-grpc-protocol-<key>: ...' over gRPC)."})

    @property
    def address(self) -> str:
        """The ``--url`` given, or the protocol's local default."""
        return self.url or f"localhost:{DEFAULT_PORTS[self.protocol]}"

    def client_settings(self, batch_size: int) -> dict:
        """The keyword arguments of :class:`NerClient` / :class:`AsyncNerClient`."""
        return {"url": self.url, "protocol": self.protocol.value, "timeout": self.timeout, "retries": self.retries,
                "batch_size": batch_size, "concurrency": self.concurrency, "ssl": self.ssl,
                "root_certificates": self.root_cert, "private_key": self.client_key,
                "certificate_chain": self.client_cert,
                "headers": dict(parse_header(h) for h in self.header or [])}


connection_options = cli.dataclass_options(Connection, "connection")


def parse_header(value: str) -> tuple[str, str]:
    """``("infer-key", "secret")`` from ``"infer-key: secret"``."""
    name, colon, content = value.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"--header {value!r} is not 'Name: value'")
    return name.strip(), content.strip()

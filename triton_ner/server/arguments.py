"""The server's command-line pieces: ports, the admin key that guards the restricted APIs, gRPC TLS."""

from __future__ import annotations

import re
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from triton_ner.core import names
from triton_ner.core.errors import ServerError

# Triton's APIs that change or reveal the server rather than serve it (load and unload models, read configs, map
# shared memory, change logging and tracing): behind the admin key when one is set. Inference, health, metadata
# and statistics stay open.
RESTRICTED_APIS = ("model-repository", "model-config", "shared-memory", "logging", "trace")
ADMIN_HEADER = "admin-key"
# Triton's gRPC endpoint reads a restricted protocol's key from the metadata key "triton-grpc-protocol-<key>".
GRPC_RESTRICTED_PREFIX = "triton-grpc-protocol-"
_HEADER_VALUE = re.compile(r"[!-~]+")  # printable ASCII, no spaces: valid as an HTTP header and gRPC metadata


def admin_headers(key: str, protocol: str = "http") -> dict[str, str]:
    """The header that opens the restricted APIs of a server started with ``admin_key=key``."""
    return {(GRPC_RESTRICTED_PREFIX if protocol == "grpc" else "") + ADMIN_HEADER: key}


def post(url: str, headers: dict[str, str], timeout: float = 5, body: bytes = b"") -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def restricted_api_args(key: str, apis: tuple[str, ...] = RESTRICTED_APIS) -> list[str]:
    """``tritonserver`` arguments that put ``apis`` behind the header ``admin-key: <key>`` on HTTP and gRPC."""
    if not _HEADER_VALUE.fullmatch(key):
        raise ServerError("the admin key must be printable ASCII without spaces")
    listed = ",".join(apis)
    return [f"--http-restricted-api={listed}:{ADMIN_HEADER}={key}",
            f"--grpc-restricted-protocol={listed}:{ADMIN_HEADER}={key}"]


@dataclass(frozen=True)
class GrpcTls:
    """gRPC over TLS: the server's certificate and key; for mutual TLS, the CA that signs client certificates.

    Triton's HTTP endpoint has no TLS: put a proxy in front of it, or use gRPC.
    """

    server_cert: Path
    server_key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def args(self) -> list[str]:
        """The ``tritonserver`` arguments; :class:`ServerError` names a file that is missing."""
        if self.mutual and self.root_cert is None:
            raise ServerError("mutual TLS needs the CA of the client certificates (--grpc-root-cert)")
        files = {"--grpc-server-cert": self.server_cert, "--grpc-server-key": self.server_key,
                 "--grpc-root-cert": self.root_cert}
        for option, path in files.items():
            if path is not None and not Path(path).is_file():
                raise ServerError(f"{option} {path}: no such file")
        return ["--grpc-use-ssl=true", *(f"{option}={Path(path).resolve()}" for option, path in files.items() if path),
                *(["--grpc-use-ssl-mutual=true"] if self.mutual else [])]


@dataclass(frozen=True)
class Ports:
    http: int = names.HTTP_PORT
    grpc: int = names.GRPC_PORT
    metrics: int = names.METRICS_PORT


def free_ports() -> Ports:
    """Three ports free on loopback now (for tests)."""
    sockets = [socket.socket() for _ in range(3)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return Ports(*(s.getsockname()[1] for s in sockets))
    finally:
        for s in sockets:
            s.close()


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False

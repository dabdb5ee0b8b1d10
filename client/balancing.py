"""Client-side load balancing over several Triton servers: round-robin per request, failover past a server that
cannot be reached.

Why in the client: a gRPC client keeps one HTTP/2 connection, so a Kubernetes ClusterIP Service (which balances
connections, not requests) sends all of one client's requests to one pod. A headless Service instead resolves to
every ready pod; the client resolves the name itself (``dns:///ner-triton-headless.ner.svc.cluster.local:8001``,
gRPC's target syntax) and spreads its requests over the addresses, as gRPC's ``round_robin`` policy does.

:class:`Balancer` only chooses addresses; the clients of :mod:`triton_ner.client.library` keep one connection per
address and tell it which address failed, so a retry after ``UNAVAILABLE`` goes to the next server at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence

from triton_ner.client.errors import ServerUnreachable

DNS_SCHEME = "dns:///"

Resolver = Callable[[str, int], list[str]]


def split_address(address: str) -> tuple[str, int]:
    """``("host", 8001)`` from ``"host:8001"`` (``"[::1]:8001"`` for an IPv6 address).

    Raises:
        ValueError: No port, or a port that is not a number from 1 to 65535.
    """
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def join_address(host: str, port: int) -> str:
    """``"host:port"``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), as sorted ``host:port`` strings.

    Raises:
        OSError: The name does not resolve.
    """
    # An IPv4 or IPv6 socket address starts with the host as a string.
    found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    return sorted(join_address(address, port) for address in found)


def parse_target(target: str | Sequence[str]) -> tuple[list[str], tuple[str, int] | None]:
    """The fixed addresses of ``target``, or the name to resolve.

    Args:
        target: ``"host:port"``, several separated by commas, a sequence of them, or ``"dns:///name:port"``.

    Returns:
        ``(addresses, None)`` for fixed addresses; ``([], (name, port))`` for a ``dns:///`` target.

    Raises:
        ValueError: An empty target, another scheme, or an address without a port.
    """
    parts = [part.strip() for part in (target.split(",") if isinstance(target, str) else target)]
    parts = [part for part in parts if part]
    if not parts:
        raise ValueError("no server address given")
    if len(parts) == 1 and parts[0].startswith(DNS_SCHEME):
        return [], split_address(parts[0].removeprefix(DNS_SCHEME))
    for part in parts:
        if "://" in part:
            raise ValueError(f"url {part!r} must be host:port without a scheme (choose the protocol with "
                             f"protocol=), or {DNS_SCHEME}name:port alone")
        split_address(part)
    return list(dict.fromkeys(parts)), None


class Balancer:
    """The addresses of one or more servers, handed out in turn, skipping for a while those that just failed.

    Thread-safe. An address that failed (:meth:`failed`) is skipped for ``cooldown`` seconds, unless every address
    has failed: then the one that failed first is tried again, so that requests still go out (and the client's
    retries with backoff decide when to give up).

    Args:
        target: See :func:`parse_target`.
        cooldown: Seconds a failed address is skipped.
        refresh: Seconds between resolutions of a ``dns:///`` name; it is also resolved again when every address
            has failed (pods replaced by a rollout have new addresses).
        resolver: ``resolver(name, port)`` gives the ``host:port`` addresses of a name (default :func:`resolve`).
        clock: Seconds, monotonic (for tests).

    Raises:
        ValueError: See :func:`parse_target`.
        ServerUnreachable: A ``dns:///`` name that does not resolve.
    """

    def __init__(self, target: str | Sequence[str], cooldown: float = 5.0, refresh: float = 30.0,
                 resolver: Resolver = resolve, clock: Callable[[], float] = time.monotonic):
        self._fixed, self._name = parse_target(target)
        self.cooldown = cooldown
        self.refresh = refresh
        self._resolver = resolver
        self._clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # address: when it failed
        self._turn = 0
        self._resolved_at = -float("inf")
        try:
            self._addresses = self._fixed or self._resolve()
        except OSError as error:
            assert self._name is not None  # only a dns:/// name is resolved
            raise ServerUnreachable(f"cannot resolve {DNS_SCHEME}{join_address(*self._name)}: "
                                    f"{error.strerror or error}") from None

    def _resolve(self) -> list[str]:
        assert self._name is not None  # only a dns:/// name is resolved
        addresses = self._resolver(*self._name)
        if not addresses:
            raise OSError(f"{self._name[0]} resolves to no address")
        self._resolved_at = self._clock()
        return addresses

    @property
    def addresses(self) -> list[str]:
        """The addresses requests go to now."""
        with self._lock:
            return list(self._addresses)

    def pick(self) -> str:
        """The next address in turn that has not failed within ``cooldown`` seconds."""
        with self._lock:
            now = self._clock()
            self._down = {a: t for a, t in self._down.items() if now - t < self.cooldown and a in self._addresses}
            if self._name and (now - self._resolved_at >= self.refresh or len(self._down) == len(self._addresses)):
                try:
                    self._addresses = self._resolve()
                except OSError:  # keep the last addresses: DNS failing is no reason to stop sending
                    self._resolved_at = now
            up = [a for a in self._addresses if a not in self._down]
            if not up:
                return min(self._down, key=self._down.__getitem__)
            address = up[self._turn % len(up)]
            self._turn += 1
            return address

    def failed(self, address: str) -> None:
        """Skip ``address`` for ``cooldown`` seconds: it could not be reached or cannot take requests now."""
        with self._lock:
            self._down[address] = self._clock()

    def available(self) -> int:
        """How many addresses have not failed within ``cooldown`` seconds."""
        with self._lock:
            now = self._clock()
            return sum(1 for a in self._addresses if now - self._down.get(a, -float("inf")) >= self.cooldown)

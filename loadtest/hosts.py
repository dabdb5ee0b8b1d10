"""Where load may go: loopback, or the compose network's Triton host, never anywhere else."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

ALLOWED_HOSTS = frozenset(os.environ.get("LOADTEST_ALLOWED_HOSTS", "triton").split(","))


def is_allowed_host(url: str, allowed_hosts: frozenset[str] = ALLOWED_HOSTS) -> bool:
    """True for ``host:port`` on loopback, or a host of the compose network (``LOADTEST_ALLOWED_HOSTS``)."""
    host = urlsplit(f"//{url}").hostname or ""
    if host in allowed_hosts:
        return True
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)

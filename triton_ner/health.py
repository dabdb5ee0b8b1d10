"""Triton's readiness endpoint, polled the same way by the launcher, the load test and the tests."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable


def is_ready(http_url: str, timeout: float = 1.0) -> bool:
    """Whether ``GET http://<http_url>/v2/health/ready`` answers 200 now."""
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_ready(http_url: str, timeout: float, alive: Callable[[], bool] = lambda: True,
               interval: float = 0.25) -> bool:
    """Poll readiness until it answers (True), or until ``alive()`` turns false or ``timeout`` seconds pass
    (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if is_ready(http_url):
            return True
        time.sleep(interval)
    return False

"""Waiting for a condition in tests: one poll loop for the process, server and container tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], bool], *, timeout: float, every: float = 1.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def seconds_until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` holds, polled every 0.1 s; an AssertionError after ``timeout`` seconds."""
    started = time.monotonic()
    assert wait_for(predicate, timeout=timeout, every=0.1), "timed out"
    return time.monotonic() - started

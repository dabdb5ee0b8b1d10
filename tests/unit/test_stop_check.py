"""When a request of a Python-backend step must stop (triton_ner.python_backend.StopCheck), on made-up requests: the
Python backend's ``is_cancelled`` is a round trip to the server, so it is asked only from a request's second
model call on; the timeout, which costs nothing to read, before every call."""

import sys
import time
import types

import pytest


class Request:
    def __init__(self, cancelled=False, timeout_us=0):
        self.cancelled, self.timeout_us, self.asked = cancelled, timeout_us, 0

    def is_cancelled(self):
        self.asked += 1
        return self.cancelled

    def timeout(self):
        return self.timeout_us


@pytest.fixture
def stop_check(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    monkeypatch.delitem(sys.modules, "triton_ner.python_backend", raising=False)
    from triton_ner.python_backend import StopCheck

    return StopCheck


def test_cancellation_is_asked_from_the_second_call_on(stop_check):
    from triton_ner.core.errors import Stopped

    requests = [Request(cancelled=True), Request()]
    check = stop_check(requests, time.monotonic())
    assert check(0) is None and check(1) is None  # before their first calls: Triton's queue dropped cancelled ones
    assert requests[0].asked == requests[1].asked == 0
    assert isinstance(check(0), Stopped) and "cancelled" in str(check(0))
    assert check(1) is None and requests[1].asked == 1


def test_a_request_past_its_timeout_stops_before_any_call(stop_check):
    request = Request(timeout_us=1000)
    stopped = stop_check([request], time.monotonic() - 0.01)(0)
    assert "timeout of 0.001 s passed" in str(stopped) and request.asked == 0
    assert stop_check([Request(timeout_us=10**7)], time.monotonic())(0) is None

"""Tail figures over windows: which requests fall in which window, and the targets' worst window."""

import math

from triton_ner_loadtest import tail


def test_windows_hold_the_requests_that_completed_in_them():
    samples = [(100.0 + i * 0.1, 10.0) for i in range(100)] + [(104.95, 500.0), (107.0, 20.0)]
    found = tail.windows("http", 16, samples, start=100.0, window_s=5.0, count=3)
    assert [(w.start_s, w.requests) for w in found] == [(0.0, 51), (5.0, 51)]  # the empty third window is left out
    first, second = found
    assert first.max_ms == 500.0 and first.p50_ms == 10.0 and math.isclose(first.max_over_p50, 50.0)
    assert second.max_ms == 20.0 and second.p99_ms <= second.max_ms


def _window(protocol, clients, p50, p99, most):
    return tail.Window(protocol, clients, 0.0, 100, p50, p99, p99, most)


def test_the_targets_are_the_worst_window_of_each_protocol_and_load():
    found = [_window("grpc", 16, 10, 20, 50), _window("grpc", 16, 10, 25, 520), _window("http", 16, 10, 20, 40),
             _window("grpc", 64, 40, 150, 200)]
    checks = {c.text: c for c in tail.targets(found)}
    assert checks["grpc, 16 clients, worst of 2 windows: max/p50"].measured == 52.0
    assert not checks["grpc, 16 clients, worst of 2 windows: max/p50"].holds
    assert checks["grpc, 16 clients, worst of 2 windows: p99/p50"].holds
    assert checks["http, 16 clients, worst of 1 windows: max/p50"].holds
    assert checks["grpc, 64 clients, worst of 1 windows: p99/p50"].measured == 3.75
    assert not any(text.startswith("http, 64") for text in checks)

"""Tail latency over windows: p50, p99, p99.9 and the maximum of each few seconds of a closed-loop load, over gRPC
and HTTP, from the moment a fresh server reports ready.

A stall that hits a few requests every few seconds hides in a whole run's p99 and shows in the worst window's
maximum; a cold start shows in the first window. ``make bench`` (``--only tail`` alone) serves the fixture export
(``config.pbtxt``) and loads it with 16 and 64 clients sending one short sentence per request, each protocol on a
server of its own, the first window starting at ready; ``docs/tail.md`` holds the table and the targets.
:func:`locust_tail` reads the same figures from a Locust run's CSV files (``make loadtest``, ``make soak``).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from triton_ner_loadtest.checks import Check

if TYPE_CHECKING:
    from triton_ner.server.launcher import TritonServer

WINDOW_S = 5.0
# (clients, windows): 16 clients for 50 s per protocol, 64 clients for 20 s.
LOADS = ((16, 10), (64, 4))
PROTOCOLS = ("grpc", "http")
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris on Monday to talk about Airbus and the European Union."


@dataclass(frozen=True)
class Window:
    """The requests that completed in one window of a load."""

    protocol: str
    clients: int
    start_s: float  # since the server reported ready
    requests: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def p99_over_p50(self) -> float:
        return self.p99_ms / self.p50_ms

    @property
    def max_over_p50(self) -> float:
        return self.max_ms / self.p50_ms


def windows(protocol: str, clients: int, samples: list[tuple[float, float]], start: float, window_s: float,
            count: int) -> list[Window]:
    """``count`` windows of ``window_s`` seconds from ``start``: ``samples`` are (completion time in seconds,
    latency in ms); a window without a request is left out."""
    found = []
    for index in range(count):
        begin, end = start + index * window_s, start + (index + 1) * window_s
        latencies = np.array([ms for at, ms in samples if begin <= at < end])
        if latencies.size:
            p50, p99, p999 = np.percentile(latencies, (50, 99, 99.9))
            found.append(Window(protocol, clients, index * window_s, int(latencies.size), float(p50), float(p99),
                                float(p999), float(latencies.max())))
    return found


def samples_of(protocol: str, server: TritonServer, clients: int, seconds: float) -> list[tuple[float, float]]:
    """(completion time, latency ms) of every request of ``clients`` closed-loop clients for ``seconds``."""
    if protocol == "grpc":
        from triton_ner_loadtest.ceiling import grpc_closed_loop

        return asyncio.run(grpc_closed_loop(server.grpc_url, clients, [SENTENCE], seconds))[1]
    from triton_ner_loadtest.http_load import run_load

    load = run_load(server.http_url, [SENTENCE], clients, 1, seconds, processes=1)
    if load.errors:
        raise RuntimeError(f"{len(load.errors)} requests failed, first: {load.errors[0]}")
    return load.completions


def measure(repository: Path, say: Callable[[str], None], loads: tuple[tuple[int, int], ...] = LOADS,
            protocols: tuple[str, ...] = PROTOCOLS, window_s: float = WINDOW_S) -> list[Window]:
    """Each protocol on a fresh server of ``repository``: every load of ``loads`` in turn, the first from ready."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    found: list[Window] = []
    for protocol in protocols:
        with TritonServer(repository, free_ports()) as server:
            ready = time.time()
            for clients, count in loads:
                start = time.time()
                samples = samples_of(protocol, server, clients, count * window_s)
                for window in windows(protocol, clients, samples, start, window_s, count):
                    found.append(window := Window(**asdict(window) | {"start_s": start - ready + window.start_s}))
                    say(f"tail {protocol} {clients} clients, {window.start_s:4.0f} s after ready: p50 "
                        f"{window.p50_ms:.1f} ms, p99 {window.p99_ms:.1f}, max {window.max_ms:.1f}")
    return found


def markdown(found: list[Window]) -> str:
    lines = ["| protocol | clients | from (s after ready) | requests | p50 ms | p99 ms | p99.9 ms | max ms | p99/p50 | "
             "max/p50 |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {w.protocol} | {w.clients} | {w.start_s:.0f} | {w.requests} | {w.p50_ms:.1f} | {w.p99_ms:.1f} | "
              f"{w.p999_ms:.1f} | {w.max_ms:.1f} | {w.p99_over_p50:.1f} | {w.max_over_p50:.1f} |" for w in found]
    return "\n".join(lines)


def targets(found: list[Window]) -> list[Check]:
    """Every window within its bounds, the first after ready included: at 16 clients p99 ≤ 3× and the maximum
    ≤ 10× the window's p50, at 64 clients p99 ≤ 4× p50 (the worst window of each is the figure)."""
    checks = []
    for protocol in PROTOCOLS:
        for clients, bounds in ((16, (("p99/p50", 3.0), ("max/p50", 10.0))), (64, (("p99/p50", 4.0),))):
            those = [w for w in found if (w.protocol, w.clients) == (protocol, clients)]
            if not those:
                continue
            for what, bound in bounds:
                ratio = (lambda w: w.p99_over_p50) if what == "p99/p50" else (lambda w: w.max_over_p50)
                checks.append(Check(f"{protocol}, {clients} clients, worst of {len(those)} windows: {what}",
                                    max(map(ratio, those)), bound, False))
    return checks


def page(table: str, run: str) -> str:
    return f"""# Tail latency over windows

Written by `make bench` (or `make bench BENCH_ARGS="--only tail"`) from one run ({run}); do not edit by hand.

The fixture export (`config.pbtxt`) on a fresh server per protocol, loaded from the moment it reports ready by
closed-loop clients on the same machine, each sending one short news sentence per request: 16 clients for ten
windows of {WINDOW_S:g} s, then 64 clients for four. Each row is one window: the requests that completed in it.
The first row of each protocol is the server's first seconds.

{table}
"""


def locust_tail(stats: Path, history: Path) -> dict[str, float]:
    """A Locust run's p50, p99, p99.9 and maximum (ms, from its stats CSV), and the worst window's p99 and maximum
    (from its history CSV, whose rows hold the percentiles of Locust's recent requests)."""
    with stats.open() as file:
        total = next(row for row in csv.DictReader(file) if row["Name"] == "Aggregated")
    with history.open() as file:
        rows = [row for row in csv.DictReader(file)
                if row["Name"] == "Aggregated" and row["99%"] not in ("N/A", "", "0")]
    return {"p50_ms": float(total["50%"]), "p99_ms": float(total["99%"]), "p999_ms": float(total["99.9%"]),
            "max_ms": float(total["100%"]),
            "worst_window_p99_ms": max((float(r["99%"]) for r in rows), default=float("nan")),
            "worst_window_max_ms": max((float(r["100%"]) for r in rows), default=float("nan"))}

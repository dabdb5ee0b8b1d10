"""``make soak``: steady Locust load on a server of its own for minutes, watching for leaks and drift.

32 users (by default) for ``--minutes``; meanwhile the resident memory of ``tritonserver`` and of each Python
stub is sampled. After the run it prints the failures (must be 0), the p99 latency of the first and last
quarter after warm-up (drift), and each process's memory growth after warm-up (at most ``--max-growth-mb``, 50 MB
by default), writes ``memory.csv``, Locust's CSVs (``locust_stats_history.csv`` holds p99 over time) and
``soak.png``, and exits 1 when a bound breaks. Not part of CI: it takes minutes.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core.errors import ServerError
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer
from triton_ner.server.processes import stub_processes
from triton_ner_loadtest.run import locust_command
from triton_ner_loadtest.tail import locust_tail

app = cli.command()


def process_names(server_pid: int) -> dict[int, str]:
    """``tritonserver`` and its live stubs by pid: ``<model> (pid)`` for a stub."""
    stubs = stub_processes(server_pid)
    return {server_pid: "tritonserver", **{pid: f"{model} ({pid})" for pid, model in stubs.items()}}


def sample_memory(server_pid: int, every: float, stop: threading.Event, rows: list[tuple[float, str, float]]
                  ) -> None:
    """Append ``(seconds, process, RSS MB)`` every ``every`` seconds until ``stop`` is set."""
    import psutil

    started = time.monotonic()
    while not stop.is_set():
        for pid, name in process_names(server_pid).items():
            try:
                rows.append((time.monotonic() - started, name, psutil.Process(pid).memory_info().rss / 2**20))
            except psutil.Error:
                pass
        stop.wait(every)


def growth_after_warmup(rows: list[tuple[float, str, float]], warmup_s: float) -> dict[str, float]:
    """Per process: the mean RSS of the last tenth of the run minus that of the first sample window after
    warm-up (MB). Means of a few samples, so that one garbage-collection swing is not growth."""
    growth = {}
    for name in sorted({row[1] for row in rows}):
        samples = [(t, mb) for t, n, mb in rows if n == name and t >= warmup_s]
        if len(samples) < 4:
            continue
        window = max(2, len(samples) // 10)
        growth[name] = sum(mb for _, mb in samples[-window:]) / window - sum(mb for _, mb in samples[:window]) / window
    return growth


def load_rows(history: Path, duration_s: float) -> list[tuple[float, float, float]]:
    """``(seconds since the first row, p50, p99)`` of Locust's aggregated history while the load ran. Locust keeps
    writing rows while it stops its users, whose latencies are not the load's: rows after ``duration_s``, or after
    the user count fell from its peak, are left out; so are rows without percentiles (``N/A``, or ``0`` in the
    first second, before Locust's window of recent requests fills)."""
    with history.open() as file:
        rows = [row for row in csv.DictReader(file)
                if row["Name"] == "Aggregated" and row["99%"] not in ("N/A", "", "0")]
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    peak = max(int(row["User Count"]) for row in rows)
    reached = False
    found: list[tuple[float, float, float]] = []
    for row in rows:
        seconds, users = int(row["Timestamp"]) - start, int(row["User Count"])
        reached = reached or users == peak
        if seconds > duration_s or (reached and users < peak):
            break
        found.append((seconds, float(row["50%"]), float(row["99%"])))
    return found


def p99_drift(history: Path, warmup_s: float, duration_s: float) -> tuple[float, float]:
    """Median p99 (ms) of the aggregated requests in the first and in the last quarter of the load after warm-up,
    from Locust's history CSV (each row's percentiles cover the last seconds of the run)."""
    steady = [p99 for seconds, _, p99 in load_rows(history, duration_s) if seconds >= warmup_s]
    if not steady:
        return float("nan"), float("nan")
    quarter = max(1, len(steady) // 4)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return median(steady[:quarter]), median(steady[-quarter:])


def failures(stats: Path) -> tuple[int, int]:
    """Requests and failures of the run, from Locust's stats CSV."""
    with stats.open() as file:
        row = next(row for row in csv.DictReader(file) if row["Name"] == "Aggregated")
    return int(row["Request Count"]), int(row["Failure Count"])


def plot(rows: list[tuple[float, str, float]], history: Path, output: Path, warmup_s: float,
         duration_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, latency) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name in sorted({row[1] for row in rows}):
        points = [(t / 60, mb) for t, n, mb in rows if n == name]
        memory.plot(*zip(*points, strict=True), label=name)
    memory.set_ylabel("resident memory (MB)")
    memory.legend(fontsize=7)
    loaded = load_rows(history, duration_s)
    if loaded:
        minutes = [seconds / 60 for seconds, _, _ in loaded]
        latency.plot(minutes, [p99 for _, _, p99 in loaded], label="p99")
        latency.plot(minutes, [p50 for _, p50, _ in loaded], label="p50")
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("minutes")
    latency.legend(fontsize=7)
    for axis in (memory, latency):
        axis.axvline(warmup_s / 60, color="grey", linestyle=":")
    figure.suptitle("Soak: memory of tritonserver and each stub, latency")
    figure.tight_layout()
    figure.savefig(output, dpi=110)


@app.command()
def main(
    minutes: Annotated[float, typer.Option(min=0.5, help="Length of the run.")] = 10,
    users: Annotated[int, typer.Option(min=1, help="Concurrent Locust users.")] = 32,
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    warmup_minutes: Annotated[float | None, typer.Option(
        help="Minutes before memory and latency count; default: a fifth of the run.")] = None,
    max_growth_mb: Annotated[float, typer.Option(help="Most a process may grow after warm-up.")] = 50,
    sample_seconds: Annotated[float, typer.Option(help="Seconds between memory samples.")] = 5,
    results: Annotated[Path, typer.Option(help="Folder for the CSVs and the plot.")] = Path("results/soak"),
    model_repository: Annotated[Path, typer.Option(help="Exported repository to serve.")] = cli.REPOSITORY,
) -> None:
    """Steady load on a server of its own; fails on a failed request or a process growing after warm-up."""
    if protocol not in ("grpc", "http"):
        raise cli.fail("soak", f"--protocol {protocol!r} is not one of: grpc, http", cli.USAGE)
    warmup_s = 60 * (minutes / 5 if warmup_minutes is None else warmup_minutes)
    results.mkdir(parents=True, exist_ok=True)
    ports = free_ports()
    with cli.one_line_errors("soak", ServerError), TritonServer(model_repository, ports) as server:
        rows: list[tuple[float, str, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(server.started.pid, sample_seconds, stop, rows))
        sampler.start()
        command = locust_command(results, users, users, f"{round(minutes * 60)}s", protocol, None, 1, "simple",
                                 ports, None, None) + ["--csv-full-history"]
        try:
            code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
        finally:
            stop.set()
            sampler.join()
    with (results / "memory.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["seconds", "process", "rss_mb"])
        writer.writerows((round(t, 1), name, round(mb, 1)) for t, name, mb in rows)
    history = results / "locust_stats_history.csv"
    requests, failed = failures(results / "locust_stats.csv")
    first, last = p99_drift(history, warmup_s, minutes * 60)
    growth = growth_after_warmup(rows, warmup_s)
    plot(rows, history, results / "soak.png", warmup_s, minutes * 60)
    tail = locust_tail(results / "locust_stats.csv", history)
    (results / "tail.json").write_text(json.dumps(tail, indent=2) + "\n")
    print(f"soak: {minutes:g} min, {users} users over {protocol}, {requests:,} requests, {failed} failed; p99 "
          f"{first:.0f} ms in the first quarter after warm-up, {last:.0f} ms in the last")
    print(f"soak: latency p50 {tail['p50_ms']:.0f} ms, p99 {tail['p99_ms']:.0f}, p99.9 {tail['p999_ms']:.0f}, max "
          f"{tail['max_ms']:.0f}; worst window p99 {tail['worst_window_p99_ms']:.0f} ms, max "
          f"{tail['worst_window_max_ms']:.0f} ({results / 'tail.json'})")
    for name, mb in growth.items():
        print(f"soak: {name}: {mb:+.1f} MB after warm-up")
    grown = {name: mb for name, mb in growth.items() if mb > max_growth_mb}
    if failed or grown or code not in (0, 1):  # locust exits 1 when a request failed: counted above
        why = [f"{failed} failed requests"] * bool(failed) + [f"{n} grew {mb:.0f} MB" for n, mb in grown.items()]
        raise cli.fail("soak", "; ".join(why) or f"locust exited with code {code}")
    print(f"soak: passed; {results}/ holds memory.csv, locust_stats_history.csv and soak.png", file=sys.stderr)


if __name__ == "__main__":
    app()

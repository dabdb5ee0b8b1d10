"""Short headless Locust runs against the real server: they make requests, fail none, and end on their own."""

import csv
import subprocess
import sys
from pathlib import Path

from triton_ner_loadtest.tail import locust_tail

LOADTEST = Path(__file__).resolve().parents[2] / "loadtest"


def _locust(triton, tmp_path, *args, files=("locustfile.py",), timeout=90):
    command = [sys.executable, "-m", "locust", "-f", ",".join(str(LOADTEST / f) for f in files), "--headless",
               "--only-summary", "--csv", str(tmp_path / "run"), "--grpc-url", triton.grpc_url,
               "--http-url", triton.http_url, *args]
    # The timeout is the assertion that the process ends: a client left open keeps Locust alive forever.
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def _total(tmp_path) -> dict:
    with open(tmp_path / "run_stats.csv") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


def test_a_short_run_over_grpc_and_http_makes_requests_and_fails_none(triton, tmp_path):
    result = _locust(triton, tmp_path, "-u", "4", "-r", "4", "-t", "4s", "--texts-per-request", "2",
                     "--max-failure-ratio", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    total = _total(tmp_path)
    assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0
    with open(tmp_path / "run_stats.csv") as f:
        assert {"grpc", "http"} <= {row["Type"] for row in csv.DictReader(f)}
    found = locust_tail(tmp_path / "run_stats.csv", tmp_path / "run_stats_history.csv")
    assert 0 < found["p50_ms"] <= found["p99_ms"] <= found["p999_ms"] <= found["max_ms"], found
    assert 0 < found["worst_window_p99_ms"] <= found["worst_window_max_ms"] <= found["max_ms"] * 1.5, found


def test_a_broken_threshold_gives_exit_code_1(triton, tmp_path):
    result = _locust(triton, tmp_path, "-u", "2", "-r", "2", "-t", "2s", "--max-p95-ms", "0.001",
                     "--tags", "short", "GrpcNerUser")
    assert result.returncode == 1
    assert "thresholds broken: p95" in result.stderr


def test_the_step_shape_runs_its_steps_and_stops(triton, tmp_path):
    result = _locust(triton, tmp_path, "--step-users", "2", "--step-seconds", "1.5", "--max-users", "4",
                     "--tags", "short", files=("locustfile.py", "step_load.py"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(_total(tmp_path)["Request Count"]) > 0


def test_load_to_a_remote_host_is_refused(triton, tmp_path):
    result = _locust(triton, tmp_path, "-u", "1", "-t", "2s", "--grpc-url", "203.0.113.5:8001")
    assert result.returncode == 2
    assert "refusing to load 203.0.113.5:8001" in result.stderr


def test_the_benchmark_load_generator_and_memory_sampler_against_the_server(triton):
    from triton_ner_loadtest.bench import served_run
    from triton_ner_loadtest.memory import MemorySampler

    with MemorySampler(triton.process.pid) as memory:
        seconds, latencies = served_run(triton.grpc_url, ["My name is Wolfgang and I live in Berlin"] * 12, 4)
    assert len(latencies) == 12 and seconds > 0
    assert memory.peak_mb > 100  # tritonserver and its Python stubs


def test_the_tail_windows_start_at_ready_on_both_protocols(repository):
    """make bench's tail rows, small: a fresh server per protocol, windows from the moment it is ready."""
    from triton_ner_loadtest import tail

    found = tail.measure(repository, lambda _: None, loads=((4, 2),), window_s=1.0)
    assert [(w.protocol, w.clients) for w in found] == [("grpc", 4)] * 2 + [("http", 4)] * 2
    for protocol in tail.PROTOCOLS:
        first = next(w for w in found if w.protocol == protocol)
        assert 0 <= first.start_s < 1.0  # the first window is the server's first second
    assert all(w.requests > 0 and w.p50_ms <= w.p99_ms <= w.p999_ms <= w.max_ms for w in found)
    assert "| grpc | 4 | 0 |" in tail.markdown(found)

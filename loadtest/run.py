"""``make loadtest``: a bounded headless Locust run against the local Triton, started if none answers.

Writes Locust's CSV and HTML reports into the results folder and exits non-zero when a threshold breaks.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core.errors import ServerError
from triton_ner.health import is_ready
from triton_ner.server.arguments import Ports
from triton_ner.server.launcher import TritonServer
from triton_ner_loadtest.tail import locust_tail

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
app = cli.command()


def locust_command(results: Path, users: int, spawn_rate: float, run_time: str, protocol: str,
                   scenario: str | None, texts_per_request: int, strategy: str, ports: Ports,
                   max_failure_ratio: float | None, max_p95_ms: float | None) -> list[str]:
    """The headless ``locust`` command line of a run."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(users), "-r", str(spawn_rate), "-t", run_time, "--stop-timeout", "30",
               "--csv", str(results / "locust"), "--html", str(results / "locust.html"),
               "--grpc-url", f"localhost:{ports.grpc}", "--http-url", f"localhost:{ports.http}",
               "--texts-per-request", str(texts_per_request), "--strategy", strategy,
               "GrpcNerUser" if protocol == "grpc" else "HttpNerUser"]
    if scenario:
        command += ["--tags", scenario]
    if max_failure_ratio is not None:
        command += ["--max-failure-ratio", str(max_failure_ratio)]
    if max_p95_ms is not None:
        command += ["--max-p95-ms", str(max_p95_ms)]
    return command


@app.command()
def main(
    users: Annotated[int, typer.Option(help="Concurrent Locust users.")] = 16,
    spawn_rate: Annotated[float, typer.Option(help="Users started per second.")] = 4,
    run_time: Annotated[str, typer.Option(help="How long to run (Locust's format: 30s, 2m).")] = "30s",
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    scenario: Annotated[str | None, typer.Option(help="short, news or long; default: mixed 6:3:1.")] = None,
    texts_per_request: Annotated[int, typer.Option(min=1, help="Texts in each request.")] = 1,
    strategy: Annotated[str, typer.Option(help="aggregation_strategy of every request.")] = "simple",
    max_failure_ratio: Annotated[float | None, typer.Option(help="Fail above this failure ratio.")] = 0.0,
    max_p95_ms: Annotated[float | None, typer.Option(help="Fail above this p95 latency (ms).")] = None,
    results: Annotated[Path, typer.Option(help="Folder for the CSV and HTML reports.")] = Path("results/loadtest"),
    model_repository: Annotated[Path, typer.Option(help="Repository to serve if no server answers.")]
    = cli.REPOSITORY,
    http_port: Annotated[int, typer.Option(help="HTTP port of the server.")] = Ports.http,
    grpc_port: Annotated[int, typer.Option(help="gRPC port of the server.")] = Ports.grpc,
    metrics_port: Annotated[int, typer.Option(help="Metrics port, if the server is started here.")] = Ports.metrics,
) -> None:
    """Load the served ner ensemble with Locust for a bounded time; reports in RESULTS."""
    if protocol not in ("grpc", "http"):
        raise cli.fail("loadtest", f"--protocol {protocol!r} is not one of: grpc, http", cli.USAGE)
    ports = Ports(http_port, grpc_port, metrics_port)
    results.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not is_ready(f"localhost:{http_port}", timeout=2):
            cli.say("loadtest", f"no server on port {http_port}; starting Triton on {model_repository}")
            with cli.one_line_errors("loadtest", ServerError):
                stack.enter_context(TritonServer(model_repository, ports))
        command = locust_command(results, users, spawn_rate, run_time, protocol, scenario, texts_per_request,
                                 strategy, ports, max_failure_ratio, max_p95_ms)
        code = subprocess.run(command).returncode
    stats, history = results / "locust_stats.csv", results / "locust_stats_history.csv"
    if stats.exists() and history.exists():
        found = locust_tail(stats, history)
        cli.say("loadtest", f"latency p50 {found['p50_ms']:.0f} ms, p99 {found['p99_ms']:.0f}, p99.9 "
                f"{found['p999_ms']:.0f}, max {found['max_ms']:.0f}; worst window p99 "
                f"{found['worst_window_p99_ms']:.0f} ms, max {found['worst_window_max_ms']:.0f}")
    cli.say("loadtest", f"reports in {results}/ (locust.html, locust_stats.csv); exit code {code}")
    raise typer.Exit(code)


if __name__ == "__main__":
    app()

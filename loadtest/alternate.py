"""``python -m triton_ner_loadtest.alternate``: the ceiling's points (:mod:`triton_ner_loadtest.ceiling`) served by
two or more servings, one after the other, alternating, and the median of each figure over the runs.

A serving is a name, the ``python3`` its Python-backend steps run in (so two checkouts, each installed in an
environment of its own, can be held against each other) and an exported repository, with a config name to load
(``null-model`` for the ceiling's null model step). Each run starts each serving's server in turn, measures every
load, and stops it; on a busy or noisy machine the medians of alternating runs are what a change is judged by.

    python -m triton_ner_loadtest.alternate before=/env-a/bin/python3:/repo-a after=.venv/bin/python3:/repo-b
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import names
from triton_ner_loadtest.ceiling import Point, measure

app = cli.command()

OUTSIDE = "outside the model step"  # the server's CPU but the model step's (figures' column)

# The options of the commands that alternate servings (this one, stages).
LoadsOption = Annotated[str, typer.Option(help="Clients x texts per request, comma-separated.")]
RunsOption = Annotated[int, typer.Option(min=1, help="Runs of every serving, alternating.")]
SecondsOption = Annotated[float, typer.Option(min=1.0, help="Seconds of load per point.")]
OutputOption = Annotated[Path | None, typer.Option(help="Write every run's figures here (JSON).")]


def parse_loads(text: str) -> list[tuple[int, int]]:
    """``64x1,64x8`` as ``[(64, 1), (64, 8)]``; raises ValueError, naming the load that is not clients x texts."""
    loads = []
    for load in text.split(","):
        clients, x, texts = load.partition("x")
        if not (x and clients.isdigit() and texts.isdigit()):
            raise ValueError(f"load {load!r} is not clients x texts (64x1)")
        loads.append((int(clients), int(texts)))
    return loads


@dataclass(frozen=True)
class Serving:
    """One side of the comparison: ``name=python:repository[:config name]``."""

    name: str
    python: Path
    repository: Path
    config_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Serving:
        name, _, rest = text.partition("=")
        python, _, rest = rest.partition(":")
        repository, _, config = rest.partition(":")
        if not (name and python and repository):
            raise ValueError(f"{text!r} is not name=python:repository[:config name]")
        return cls(name, Path(python), Path(repository), config or None)


def figures(point: Point) -> dict[str, float]:
    """What one point is judged by: texts/s, and CPU ms per text of the server, its parts, and all but the model
    step."""
    cpu = point.cpu_ms_per_text
    return {"texts/s": point.texts_per_s, "p50 ms": point.percentile(50),
            "tritonserver": cpu.get("tritonserver", float("nan")),
            names.TEXT_STEP: cpu.get(names.TEXT_STEP, float("nan")),
            names.MODEL: cpu.get(names.MODEL, float("nan")),
            OUTSIDE: point.server_cpu_ms_per_text - cpu.get(names.MODEL, 0.0)}


def run_servings(servings: list[Serving], loads: list[tuple[int, int]], runs: int, seconds: float
                 ) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Each serving's figures of each load (``"CxT"``), one per run."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    found: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {} for s in servings}
    for run in range(runs):
        for serving in servings:
            with TritonServer(serving.repository, free_ports(), config_name=serving.config_name,
                              steps_python=serving.python) as server:
                for concurrency, texts in loads:
                    point = measure(server, serving.name, concurrency, texts, seconds)
                    found[serving.name].setdefault(f"{concurrency}x{texts}", []).append(figures(point))
                    cli.say("alternate", f"run {run + 1}/{runs} {serving.name} {concurrency}x{texts}: "
                            + ", ".join(f"{k} {v:.3f}" for k, v in figures(point).items()))
    return found


def markdown(found: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """One row per serving and load: the median of each figure over the runs."""
    columns = list(next(iter(next(iter(found.values())).values()))[0])
    headers = [c if c in ("texts/s", "p50 ms") else f"{c} CPU ms/text" for c in columns]
    lines = ["| serving | clients x texts | runs | " + " | ".join(headers) + " |", "|---" * (3 + len(columns)) + "|"]
    for name, loads in found.items():
        for load, runs in loads.items():
            medians = [statistics.median(r[c] for r in runs) for c in columns]
            lines.append(f"| {name} | {load} | {len(runs)} | " + " | ".join(f"{m:.3f}" if m < 100 else f"{m:.0f}"
                                                                           for m in medians) + " |")
    return "\n".join(lines)


@app.command()
def main(
    servings: Annotated[list[str], typer.Argument(help="Each serving as name=python:repository[:config name].")],
    loads: LoadsOption = "64x1,64x8",
    runs: RunsOption = 5,
    seconds: SecondsOption = 10.0,
    output: OutputOption = None,
) -> None:
    """Serve the ceiling's loads with each serving in turn, alternating, and print the medians."""
    try:
        chosen = [Serving.parse(s) for s in servings]
        points = parse_loads(loads)
    except ValueError as error:
        raise cli.fail("alternate", str(error), cli.USAGE) from None
    found = run_servings(chosen, points, runs, seconds)
    if output is not None:
        output.write_text(json.dumps(found, indent=1))
    print(markdown(found))


if __name__ == "__main__":
    app()

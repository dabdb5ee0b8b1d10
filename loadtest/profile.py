"""``python -m triton_ner_loadtest.profile``: where each text's CPU goes in the served ensemble, under the ceiling's
load (:mod:`triton_ner_loadtest.ceiling`).

The server runs under asynchronous gRPC clients sending short sentences; meanwhile py-spy samples each
Python-backend stub (the text step ``ner_text``, the model step ``ner_model``) and ``perf`` samples
``tritonserver``. Each part's CPU time per text comes from the operating system over the same window; each sample
is put in the innermost category its stack reaches (:data:`CATEGORIES`), so the table splits each part's CPU time
per text by what it was doing. Needs py-spy (``pip install py-spy``) and perf (Debian: ``apt-get install
linux-perf``), and the rights to trace the server's processes (root, or ``kernel.perf_event_paranoid`` at most 1
and ``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import names
from triton_ner_loadtest.exports import FIXTURE_REPOSITORY, RepositoryOption

app = cli.command()

# Samples in a BLS call's wait for the model step: the stub is blocked, not computing, though py-spy may count the
# thread active there; they are shown apart and get no CPU time.
WAITING = "waiting for the model step (BLS call)"
# (category, what a stack frame holds): a sample belongs to the innermost frame that matches, so a call made inside
# another category's function counts as its own (the model call inside the length groups' planning).
CATEGORIES = (
    ("reading requests", "._read ("),
    ("tokenization", "prepare_pool ("),
    ("tokenization", "prepare_requests ("),
    ("planning the model calls", "run_pooled ("),
    ("stop checks (cancellation, timeout)", "StopCheck.__call__ ("),
    (WAITING, "_exec ("),
    ("the model call (BLS)", "model_runner.<locals>.run ("),
    ("aggregation", "aggregate_pooled ("),
    ("aggregation", "aggregate_requests ("),
    ("JSON", "to_json ("),
    ("responses", "response ("),
    ("input checks", "._inputs ("),
    ("pooling and planning the runs", "run_requests ("),
    ("the runner (the model)", "runner.<locals>.run ("),
    ("the runner (the model)", "GraphRunner.__call__ ("),
    ("execute, other", ".execute ("),
)
NATIVE = "the stub's own work (no Python frame)"
# tritonserver's shared objects, by what runs in them.
LIBRARIES = (("kernel (system calls, scheduling, sockets)", "[kernel"),
             ("libc (allocation, copies, locks)", "libc"),
             ("gRPC and HTTP front ends (tritonserver binary)", "tritonserver "),
             ("Triton core (scheduling, ensemble)", "libtritonserver"),
             ("Python backend (shared memory, stub messages)", "libtriton_python"))


def tool(name: str) -> str | None:
    """The command ``name`` on PATH or beside this Python (a virtual environment's ``bin``)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


@dataclass(frozen=True)
class Part:
    """One process group of the server: its CPU time per text, and its samples by category."""

    name: str
    cpu_ms_per_text: float
    samples: dict[str, int]

    def rows(self) -> list[tuple[str, float, float | None]]:
        """``(category, share of the part's samples, CPU ms per text)``, largest first; the part's CPU time is
        shared among the samples but the waits (None)."""
        total = sum(self.samples.values()) or 1
        computing = sum(n for category, n in self.samples.items() if category != WAITING) or 1
        return [(category, n / total, None if category == WAITING else self.cpu_ms_per_text * n / computing)
                for category, n in sorted(self.samples.items(), key=lambda item: -item[1])]


def stack_category(frames: list[str]) -> str:
    """The category of one py-spy stack (outermost frame first)."""
    if not frames or frames == [""]:
        return NATIVE
    for frame in reversed(frames):
        for category, marker in CATEGORIES:
            if marker in frame:
                return category
    return "other Python"


def py_spy_samples(raw: Path) -> dict[str, int]:
    """Samples by category of a py-spy ``--format raw`` file (collapsed stacks: ``a;b;c count``)."""
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            samples[stack_category(stack.split(";") if stack else [])] += int(count)
    return dict(samples)


def perf_samples(record: Path) -> dict[str, int]:
    """Samples (as per mille of the total) of a ``perf record`` file by shared object (:data:`LIBRARIES`)."""
    report = subprocess.run(["perf", "report", "-i", str(record), "--sort", "dso", "--stdio"],
                            capture_output=True, text=True, check=True).stdout
    samples: collections.Counter[str] = collections.Counter()
    for share, library in re.findall(r"^\s+([\d.]+)%\s+(\S.*)$", report, re.MULTILINE):
        category = next((c for c, marker in LIBRARIES if (library + " ").startswith(marker)), "other libraries")
        samples[category] += round(float(share) * 10)
    return dict(samples)


def profile(repository: Path, config_name: str | None, clients: int, texts: int, seconds: float,
            output: Path, steps_python: Path | None = None) -> list[Part]:
    """Serve ``repository`` under load and sample every part for ``seconds``; the raw samples go to ``output``."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer
    from triton_ner.server.processes import stub_processes, tree_cpu_seconds
    from triton_ner_loadtest.ceiling import SENTENCE, grpc_closed_loop

    output.mkdir(parents=True, exist_ok=True)
    with TritonServer(repository, free_ports(), config_name=config_name, steps_python=steps_python) as server:
        pid = server.started.pid
        asyncio.run(grpc_closed_loop(server.grpc_url, min(clients, 8), [SENTENCE] * texts, 2.0))  # warm-up
        served: list[tuple[float, list]] = []
        load = threading.Thread(target=lambda: served.append(asyncio.run(grpc_closed_loop(
            server.grpc_url, clients, [SENTENCE] * texts, seconds + 4.0))))
        load.start()
        time.sleep(2.0)
        stubs = stub_processes(pid)
        samplers = [subprocess.Popen([str(tool("py-spy")), "record", "-p", str(stub), "-d", str(int(seconds)),
                                      "-r", "250", "--nonblocking", "-f", "raw", "-o",
                                      str(output / f"{model}-{stub}.txt")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for stub, model in stubs.items()]
        samplers.append(subprocess.Popen(["perf", "record", "-F", "499", "-p", str(pid), "-o",
                                          str(output / "tritonserver.perf"), "--", "sleep", str(seconds)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu_before, begun = tree_cpu_seconds(pid), time.time()
        for sampler in samplers:
            sampler.wait()
        cpu_after, ended = tree_cpu_seconds(pid), time.time()
        load.join()
    done = sum(1 for completed, _ in served[0][1] if begun <= completed <= ended) * texts if served else 0
    if not done:
        raise RuntimeError("no request completed while sampling")
    per_text = {part: (cpu_after[part] - cpu_before.get(part, 0.0)) * 1000 / done for part in cpu_after}
    parts = [Part("tritonserver", per_text["tritonserver"], perf_samples(output / "tritonserver.perf"))]
    for model in (names.TEXT_STEP, names.MODEL):
        samples: collections.Counter[str] = collections.Counter()
        for raw in output.glob(f"{model}-*.txt"):
            samples.update(py_spy_samples(raw))
        if model in per_text:
            parts.append(Part(model, per_text[model], dict(samples)))
    return parts


def markdown(parts: list[Part]) -> str:
    """One row per part and category: its share of the part's samples and CPU ms per text."""
    lines = ["| part | CPU ms/text | what | share of the part | CPU ms/text |", "|---|---|---|---|---|"]
    for part in parts:
        for k, (category, share, ms) in enumerate(part.rows()):
            head = f"| {part.name} | {part.cpu_ms_per_text:.3f} |" if k == 0 else "| | |"
            lines.append(f"{head} {category} | {share:.0%} | {'-' if ms is None else f'{ms:.3f}'} |")
    total = sum(p.cpu_ms_per_text for p in parts)
    lines.append(f"| all | {total:.3f} | | | |")
    return "\n".join(lines)


@app.command()
def main(
    repository: RepositoryOption = FIXTURE_REPOSITORY,
    config: Annotated[str | None, typer.Option(help="A config name to serve (null-model: the null model "
                                                    "step).")] = None,
    clients: Annotated[int, typer.Option(min=1, help="Asynchronous gRPC clients.")] = 64,
    texts: Annotated[int, typer.Option(min=1, help="Texts per request.")] = 1,
    seconds: Annotated[float, typer.Option(min=2.0, help="Seconds of sampling.")] = 20.0,
    output: Annotated[Path, typer.Option(help="Where the raw samples and profile.json go.")]
    = Path("results/profile"),
    steps_python: Annotated[Path | None, typer.Option(help="The python3 of the environment the steps run in (another "
                                                           "checkout's, to profile it).")] = None,
) -> None:
    """Profile the served ensemble under load: each part's CPU time per text, by what it was doing."""
    missing = [name for name in ("py-spy", "perf") if tool(name) is None]
    if missing:
        raise cli.fail("profile", f"{' and '.join(missing)} not found: pip install py-spy; Debian: apt-get install "
                                  "linux-perf")
    from triton_ner_loadtest.ceiling import NULL_CONFIG, fixture_repository, with_null_model_step

    if repository == FIXTURE_REPOSITORY:
        fixture_repository(repository, lambda m: cli.say("profile", f"export: {m}"))
    if config == NULL_CONFIG:
        config = with_null_model_step(repository)
    parts = profile(repository, config, clients, texts, seconds, output, steps_python)
    (output / "profile.json").write_text(json.dumps(
        {"clients": clients, "texts_per_request": texts, "config": config,
         "parts": [{"name": p.name, "cpu_ms_per_text": p.cpu_ms_per_text, "samples": p.samples} for p in parts]},
        indent=1))
    print(markdown(parts))


if __name__ == "__main__":
    app()

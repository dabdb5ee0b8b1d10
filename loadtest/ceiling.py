"""The serving path's own ceiling: the ensemble around a model that computes almost nothing (the fixture model).

What is left is the cost of gRPC, the ensemble and the Python-backend text step, and how many windows it hands the
model step at once: the figures that say whether the path keeps a GPU busy. Measured with asynchronous
gRPC clients (one process, ``tritonclient.grpc.aio``) for a fixed time per point; each step's compute time and
``ner_model``'s average batch come from Triton's own statistics (``/v2/models/stats``), taken before and after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from triton_ner.core import names
from triton_ner_loadtest import plots
from triton_ner_loadtest.checks import Check
from triton_ner_loadtest.http_load import model_statistics, step_figures, text_step_own_ms_per_text

if TYPE_CHECKING:
    from triton_ner.server.launcher import TritonServer

CONCURRENCY = (1, 16, 64, 256)
TEXTS_PER_REQUEST = (1, 8)
STEPS = (names.TEXT_STEP, names.MODEL)
CPU_DEFAULT = "config.pbtxt"
GPU_ON_CPU = "gpu on CPU"  # configs/gpu.pbtxt switched to CPU (export.configs.on_cpu): NVIDIA's onnxruntime backend
FULL_SIZE_GPU = "full-size, gpu on CPU"
NULL_MODEL = "null model step"  # config.pbtxt with the model step's null runner: the serving path alone
NULL_CONFIG = "null-model"
NULL_LOADS = tuple((c, t) for t in TEXTS_PER_REQUEST for c in (16, 64, 256))
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris on Monday to talk about Airbus and the European Union."


@dataclass
class Point:
    """One measured load: variant, clients, texts per request; throughput, latency and the steps' figures."""

    variant: str
    concurrency: int
    texts_per_request: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    steps: dict[str, dict]  # each step's figures from Triton's statistics (http_load.step_figures)
    server_rss_mb: float | None = None
    # CPU time per text served (user and system, from the OS) of tritonserver and of each model's stubs: what each
    # part costs, which the steps' compute times (wall time) only bound on cores shared with the load generator.
    cpu_ms_per_text: dict[str, float] = field(default_factory=dict)

    @property
    def model_average_batch(self) -> float:
        """Windows per execution of ner_model."""
        return self.steps[names.MODEL]["average_batch"] or float("nan")

    @property
    def text_average_batch(self) -> float:
        """Requests per execution of the text step."""
        return self.steps[names.TEXT_STEP]["average_batch"] or float("nan")

    def step_ms_per_text(self, step: str) -> float:
        """The compute time of ``step``'s executions per text served."""
        figure = self.steps.get(step, {}).get("compute_ms_per_text")
        return float("nan") if figure is None else figure

    @property
    def server_cpu_ms_per_text(self) -> float:
        return sum(self.cpu_ms_per_text.values()) if self.cpu_ms_per_text else float("nan")

    @property
    def model_cpu_ms_per_text(self) -> float:
        """The model step's processes (a Python-backend step's stubs; NaN for a backend inside tritonserver)."""
        return self.cpu_ms_per_text.get(names.MODEL, float("nan"))

    @property
    def outside_model_cpu_ms_per_text(self) -> float:
        """The server's CPU time but the model step's: gRPC, the ensemble, the text step and the calls between
        them (NaN where the model step runs inside tritonserver and cannot be told apart)."""
        return self.server_cpu_ms_per_text - self.model_cpu_ms_per_text

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.texts_per_request / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        data = asdict(self)
        del data["latencies_ms"]
        return data | {"texts_per_s": self.texts_per_s, "p50_ms": self.percentile(50), "p99_ms": self.percentile(99),
                       "p999_ms": self.percentile(99.9), "max_ms": max(self.latencies_ms, default=float("nan"))}


async def grpc_closed_loop(url: str, concurrency: int, texts: list[str], seconds: float
                           ) -> tuple[float, list[tuple[float, float]]]:
    """``concurrency`` asynchronous gRPC clients, each sending ``texts`` as one request after the other for
    ``seconds``: the elapsed seconds, and (``time.time()`` at completion, latency ms) of each request."""
    import tritonclient.grpc.aio as grpcaio

    client = grpcaio.InferenceServerClient(url)
    data = np.array([t.encode() for t in texts], dtype=np.object_)
    samples: list[tuple[float, float]] = []
    stop = time.perf_counter() + seconds

    async def user() -> None:
        while time.perf_counter() < stop:
            tensor = grpcaio.InferInput(names.TEXT, [len(texts)], "BYTES")
            tensor.set_data_from_numpy(data)
            started = time.perf_counter()
            await client.infer(names.ENSEMBLE, [tensor])
            samples.append((time.time(), (time.perf_counter() - started) * 1000))

    try:
        begun = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        return time.perf_counter() - begun, samples
    finally:
        await client.close()


def measure(server: TritonServer, variant: str, concurrency: int, texts_per_request: int, seconds: float = 8.0
            ) -> Point:
    """``concurrency`` clients sending ``texts_per_request`` short sentences per request for ``seconds`` to
    ``server`` (a running :class:`TritonServer`), with the CPU time of its parts."""
    from triton_ner.server.processes import tree_cpu_seconds

    texts = [SENTENCE] * texts_per_request
    asyncio.run(grpc_closed_loop(server.grpc_url, min(concurrency, 8), texts, 1.0))  # warm-up
    before, cpu_before = model_statistics(server.http_url), tree_cpu_seconds(server.started.pid)
    elapsed, samples = asyncio.run(grpc_closed_loop(server.grpc_url, concurrency, texts, seconds))
    after, cpu_after = model_statistics(server.http_url), tree_cpu_seconds(server.started.pid)
    served = len(samples) * texts_per_request
    return Point(variant, concurrency, texts_per_request, len(samples), elapsed, [ms for _, ms in samples],
                 step_figures(before, after, served),
                 cpu_ms_per_text={part: (cpu_after[part] - cpu_before.get(part, 0.0)) * 1000 / served
                                  for part in cpu_after})


def markdown(points: list[Point]) -> str:
    lines = ["| variant | clients | texts/request | texts/s | p50 ms | p99 ms | p99.9 ms | max ms | ner_text ms/text | "
             "ner_model ms/text | text step's own ms/text | ner_text CPU ms/text | server CPU ms/text | server CPU "
             "ms/text outside ner_model | ner_model CPU ms/text | requests per ner_text execute | ner_model average "
             "batch | server RSS MB |", "|---" * 18 + "|"]
    for p in points:
        step = [f"{p.step_ms_per_text(m):.3f}" for m in STEPS]
        lines.append(f"| {p.variant} | {p.concurrency} | {p.texts_per_request} | {p.texts_per_s:.0f} | "
                     f"{p.percentile(50):.1f} | {p.percentile(99):.1f} | {p.percentile(99.9):.1f} | "
                     f"{max(p.latencies_ms, default=float('nan')):.1f} | {' | '.join(step)} | {text_step_ms(p):.3f} | "
                     f"{text_cpu_ms(p):.3f} | {p.server_cpu_ms_per_text:.3f} | "
                     f"{_ms(p.outside_model_cpu_ms_per_text)} | {_ms(p.model_cpu_ms_per_text)} | "
                     f"{p.text_average_batch:.1f} | {p.model_average_batch:.1f} | "
                     f"{f'{p.server_rss_mb:.0f}' if p.server_rss_mb else '-'} |")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN: not measured apart


def serve_points(repository: Path, variant: str, say: Callable[[str], None], config_name: str | None = None,
                 loads: tuple[tuple[int, int], ...] = tuple(
                     (c, t)  # type: ignore[name-defined]  # mypy misses a default's comprehension names (mypy#9346)
                     for t in TEXTS_PER_REQUEST for c in CONCURRENCY),
                 seconds: float = 8.0) -> list[Point]:
    """Start the local Triton on ``repository`` and measure each ``(clients, texts per request)`` of ``loads``."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer
    from triton_ner_loadtest.memory import MemorySampler

    points = []
    with TritonServer(repository, free_ports(), config_name=config_name) as server:
        for concurrency, texts in loads:
            with MemorySampler(server.started.pid) as memory:
                point = measure(server, variant, concurrency, texts, seconds)
            point.server_rss_mb = memory.peak_mb
            points.append(point)
            say(f"ceiling {variant} c={concurrency} x{texts}: {point.texts_per_s:.0f} texts/s, "
                f"p50 {point.percentile(50):.1f} ms, ner_model average batch {point.model_average_batch:.1f}")
    return points


def fixture_repository(output: Path, log: Callable[[str], None]) -> Path:
    """The fixture model exported with its CPU and GPU configs, reused when present and of this code."""
    from triton_ner.export.fixture import fixture_model
    from triton_ner_loadtest.exports import cached_export

    return cached_export(fixture_model(), output, log=log)


def with_null_model_step(repository: Path, config_name: str | None = None) -> str:
    """Write into ``repository`` a config under which ``ner_model`` runs the null runner (its Python-backend step,
    ``model_file`` ``null``: the same queue, batching and instances, no model) and ``ner_text`` runs as under
    ``config_name`` (``config.pbtxt`` when None); return that config's name, to serve with
    (``--model-config-name``). The config's text is edited, not parsed: a GPU machine's Python may lack protobuf.

    Raises:
        ValueError: The model step's ``config.pbtxt`` is not the Python-backend step's.
    """
    import re
    import shutil

    name = NULL_CONFIG if config_name is None else f"{NULL_CONFIG}-{config_name}"
    source = repository / names.MODEL / "config.pbtxt"
    null, found = re.subn(r'(key: "model_file"\s*value \{\s*string_value: )"[^"]*"', rf'\1"{names.NULL_MODEL_FILE}"',
                          source.read_text())
    if found != 1 or 'backend: "python"' not in null:
        raise ValueError(f"{source} is not the Python-backend model step's config (the null runner is its)")
    written = repository / names.MODEL / "configs" / f"{name}.pbtxt"
    written.parent.mkdir(exist_ok=True)
    written.unlink(missing_ok=True)  # it may be a hard link of a copy of the repository: a new file
    written.write_text(null)
    if config_name is not None:
        text = repository / names.TEXT_STEP / "configs"
        (text / f"{name}.pbtxt").unlink(missing_ok=True)
        shutil.copyfile(text / f"{config_name}.pbtxt", text / f"{name}.pbtxt")
    return name


def text_step_ms(point: Point) -> float:
    """The text step's own compute per text (:func:`text_step_own_ms_per_text`)."""
    own = text_step_own_ms_per_text(point.steps)
    return float("nan") if own is None else own


def text_cpu_ms(point: Point) -> float:
    """The CPU time of the text step's processes per text (its own work and its side of the model calls), which
    waiting for a core does not inflate as it does the compute time."""
    return point.cpu_ms_per_text.get(names.TEXT_STEP, float("nan"))


def targets(points: list[Point]) -> list[Check]:
    """The serving path's targets, from this run's points."""
    def find(variant: str, concurrency: int, texts: int) -> Point | None:
        return next((p for p in points if (p.variant, p.concurrency, p.texts_per_request) ==
                     (variant, concurrency, texts)), None)

    checks = []
    if (cpu := find(CPU_DEFAULT, 64, 1)) is not None:
        checks += [("fixture model, config.pbtxt, 64 clients x 1 text: texts/s", cpu.texts_per_s, 1000.0, True),
                   ("  text step's own compute, ms per text (1 text per request)", text_step_ms(cpu), 0.5, False),
                   ("  text step's CPU time, ms per text (1 text per request)", text_cpu_ms(cpu), 0.5, False),
                   ("  ner_model compute, ms per request (1 text per request)", cpu.step_ms_per_text(names.MODEL),
                    0.3, False)]
    if (eight := find(CPU_DEFAULT, 64, 8)) is not None:
        checks += [("  text step's own compute, ms per text (8 texts per request)", text_step_ms(eight), 0.15,
                    False),
                   ("  text step's CPU time, ms per text (8 texts per request)", text_cpu_ms(eight), 0.15, False)]
    # The serving path near its floor: the server's CPU outside the model step, and the null model step's own.
    outside = [(find(CPU_DEFAULT, 64, texts), texts, bound) for texts, bound in ((1, 0.30), (8, 0.08))]
    checks += [(f"config.pbtxt, 64 clients x {texts} text{'s' * (texts > 1)}: server CPU outside the model step, "
                "ms per text", point.outside_model_cpu_ms_per_text, bound, False)
               for point, texts, bound in outside if point is not None]
    if (null := find(NULL_MODEL, 64, 1)) is not None:
        checks.append(("null model step, 64 clients x 1 text: ner_model CPU ms per text", null.model_cpu_ms_per_text,
                       0.03, False))
    if (full := find(FULL_SIZE_GPU, 64, 1)) is not None:
        checks.append(("full-size model, gpu on CPU, 64 clients: ner_model average batch", full.model_average_batch,
                       16.0, True))
    return [Check(*check) for check in checks]


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant, colour in ((CPU_DEFAULT, "tab:blue"), (GPU_ON_CPU, "tab:green"), (NULL_MODEL, "tab:grey")):
        for texts, style in zip(TEXTS_PER_REQUEST, ("o-", "s--"), strict=True):
            line = [p for p in points if p.variant == variant and p.texts_per_request == texts]
            if line:
                xs = [p.concurrency for p in line]
                label = f"{variant}, {texts} text{'s' if texts > 1 else ''}/request"
                left.plot(xs, [p.texts_per_s for p in line], style, color=colour, label=label)
                right.plot(xs, [p.model_average_batch for p in line], style, color=colour, label=label)
    left.set(xlabel="concurrent clients", ylabel="texts/s", title="Serving-path ceiling (fixture model)",
             xscale="log")
    right.set(xlabel="concurrent clients", ylabel="windows per execution", title="ner_model average batch",
              xscale="log", yscale="log")
    plots.finish(figure, (left, right), CONCURRENCY, path)


def page(table: str, run: str) -> str:
    """The docs page of one run (``run``: its date and machine): what is measured, the table and targets, the
    plot."""
    return f"""# The serving path's ceiling

Written by `make bench` (or `make bench BENCH_ARGS="--only ceiling"`) from one run ({run}); do not edit by hand.

The ensemble served around the fixture model (two layers of 64 dimensions), so that what is measured is mostly the
cost of gRPC, the ensemble and the Python-backend text step `ner_text`, and how many windows it hands the model
step at once. Asynchronous gRPC clients in one process on the same machine send the same short news sentence, 1 or
8 per request, for 8 seconds per row (20 s for the full-size model). Each step's compute time per text and the
average batches come from Triton's statistics (`/v2/models/stats`) before and after the row: `ner_text`'s time
includes its wait for its `ner_model` calls, so the text step's own compute is its time less the time its calls
spent at `ner_model`, queued or running (from `ner_model`'s per-request statistics). Those are wall times, which
on cores shared with the load generator include waits for a core; the CPU columns are the CPU time (user and
system, from the operating system) of `ner_text`'s processes and of the whole server (tritonserver and every stub)
per text, and the server's CPU time outside the model step and the model step's own, where it runs in processes of
its own (the Python backend; `-` where NVIDIA's backend runs it inside tritonserver). `null model step` is
`config.pbtxt` with the model step's null runner (`model_file` `null`: zero logits, no model): what is left is the
serving path alone, the throughput ceiling of the host around any model (on a GPU, the model is cheap and the host
pays for the rest); [the serving path's profile](serving-path.md) says where its CPU time goes. `gpu on CPU` is
`configs/gpu.pbtxt` switched to CPU (`export.configs.on_cpu`: NVIDIA's onnxruntime backend, one intra-op thread);
the last row is the full-size benchmark model (random weights) in that configuration, whose model step is the
slowest, as on a GPU under load.

{table}

![texts/s and ner_model's average batch against concurrent clients](ceiling.png)
"""

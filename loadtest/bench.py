"""``make bench``: what serving on Triton buys over running the transformers pipeline yourself.

One run, one machine, one corpus (generated CoNLL-like sentences of 5 to 40 words and a few 600-word documents,
fixed seed), on the full-size benchmark model (DistilBERT with random weights: the real model's compute):

1. the transformers pipeline as the model card uses it, one text per call;
2. the pipeline with ``batch_size=32``;
3. in process: the project's tokenization, ONNX Runtime and aggregation at their best batch size (the ceiling
   of this machine at that precision);
4. the served ensemble through the real local Triton over gRPC, one text per request, at concurrency 1, 8, 32;

then 3 and 4 again with the INT8 model and with the BF16 model (the TorchScript file cast to bfloat16 at load, on
a CPU with AVX-512 BF16 or AMX), and with OpenVINO's FP32, BF16 and INT8 (NNCF) models, the BF16 one also in
NVIDIA's ``openvino`` backend when ``make backends`` has built it; the configurations against FP32 again on the
corpus' short sentences alone; and the cost of text length (10 to 2,000 words) served; and, when
``make backends`` has built it, the GPU config's model step in NVIDIA's own ``onnxruntime`` backend on CPU
(``export.configs.on_cpu``: the tokenizer pads to length buckets, the backend batches equal shapes) with 1 and 2
intra-op threads, against the Python-backend runner of ``config.pbtxt``. It prints a Markdown table, checks the
targets as ratios of this run, and writes ``bench.json`` and ``bench.png``. ``--only onnxruntime-backend`` runs
only the served FP32 rows of both backends, ``--only bf16`` only the FP32 and BF16 rows, ``--only openvino`` the
FP32 and OpenVINO rows with their targets.

Last, the serving path's own ceiling (:mod:`triton_ner.loadtest.ceiling`, ``--only ceiling`` alone): the fixture
model, whose compute is small, served by ``config.pbtxt`` and by the GPU config switched to CPU at 1 to 256
clients with 1 and 8 texts per request, and the full-size model in the GPU config at 64 clients; it writes
``ceiling.md``, ``ceiling.json`` and ``ceiling.png``. Then the tail over windows (:mod:`triton_ner.loadtest.tail`,
``--only tail`` alone): p50, p99, p99.9 and the maximum of each 5 s from a fresh server's ready, over gRPC and
HTTP, with their targets; ``tail.md`` and ``tail.json``.
"""

from __future__ import annotations

import enum
import json
import os
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core import variants
from triton_ner.loadtest import plots
from triton_ner.loadtest.memory import MemorySampler
from triton_ner.loadtest.exports import cached_export
from triton_ner.loadtest.checks import Check, checks_table
from triton_ner.loadtest.texts import benchmark_corpus, words_text

CONCURRENCY = (1, 8, 32)
SHORT_CONCURRENCY = (1, 32)
SHORT_WORDS = 40  # the corpus' sentences (5 to 40 words), without its 600-word documents
BF16_GAIN = 1.3  # served BF16 (TorchScript, AVX-512 BF16) over served FP32 (ONNX Runtime, fused graph)
# Served OpenVINO over served FP32 (config.pbtxt): BF16 at 32 clients and at 1, INT8 at 32.
OPENVINO_GAINS = (("bf16", 32, 2.0), ("bf16", 1, 1.5), ("int8", 32, 3.0))
DEFAULT = variants.default(variants.Format.ONNX)
# (row name, variant): what is served, and measured in process; the variant's precision names its rows.
SERVED = (("served", DEFAULT), ("served", variants.INT8), ("served", variants.BF16),
          ("served openvino", variants.OPENVINO), ("served openvino", variants.OPENVINO_BF16),
          ("served openvino", variants.OPENVINO_INT8))
OPENVINO_BACKEND = ("served openvino backend", variants.OPENVINO_BF16_BACKEND)
# Served again on the short sentences alone, at SHORT_CONCURRENCY.
SHORT = (("served", DEFAULT), ("served openvino", variants.OPENVINO_BF16), ("served openvino", variants.OPENVINO_INT8))
LENGTHS = (10, 50, 200, 500, 2000)
IN_PROCESS_BATCHES = (1, 8, 32, 64)
ORT_THREADS = (1, 2)  # intra_op_thread_count of NVIDIA's onnxruntime backend: on 2 cores both are worth a row
app = cli.command()


@dataclass
class Row:
    """One measured configuration."""

    name: str
    precision: str
    concurrency: int | None
    texts: int
    seconds: float
    latencies_ms: list[float]
    server_rss_mb: float | None = None
    tokens: int | None = None

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict:
        data = asdict(self)
        del data["latencies_ms"]
        data.update(texts_per_s=self.texts_per_s, p50_ms=self.percentile(50), p95_ms=self.percentile(95),
                    p99_ms=self.percentile(99))
        if self.tokens:
            data["tokens_per_s"] = self.tokens / self.seconds
        return data


def timed_calls(call: Callable[[list[str]], object], texts: list[str], batch: int) -> tuple[float, list[float]]:
    """Run ``call`` on consecutive batches; return the wall time and each call's latency (ms)."""
    latencies = []
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        t0 = time.perf_counter()
        call(texts[i:i + batch])
        latencies.append((time.perf_counter() - t0) * 1000)
    return time.perf_counter() - started, latencies


def length_sample(words: int) -> list[str]:
    """Texts of exactly ``words`` words, about 4,000 words in all (8 to 96 texts)."""
    return [words_text(random.Random(words * 1000 + i), words) for i in range(max(8, min(96, 4000 // words)))]


def served_run(url: str, texts: list[str], concurrency: int) -> tuple[float, list[float]]:
    """``concurrency`` gRPC clients, one text per request, until the texts are done."""
    from triton_ner.client import NerClient

    work = deque(texts)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def user() -> None:
        with NerClient(url, retries=0, timeout=600) as client:
            while True:
                with lock:
                    if not work or errors:
                        return
                    text = work.popleft()
                t0 = time.perf_counter()
                try:
                    client.predict(text)
                except BaseException as error:  # noqa: BLE001: reported after the run
                    errors.append(error)
                    return
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=user) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a served request failed: {errors[0]}")
    return time.perf_counter() - started, latencies


class Rows(str, enum.Enum):
    ALL = "all"
    ONNXRUNTIME_BACKEND = "onnxruntime-backend"  # served FP32: Python-backend runner vs NVIDIA's backend
    BF16 = "bf16"  # served FP32 (ONNX Runtime) and BF16 (TorchScript cast at load), in process and served
    OPENVINO = "openvino"  # served FP32 (ONNX Runtime) and OpenVINO's FP32, BF16 and INT8, with their targets
    CEILING = "ceiling"  # the serving path around a small model (loadtest/ceiling.py)
    TAIL = "tail"  # tail latency over windows from ready, both protocols (loadtest/tail.py)


def ort_row_name(threads: int) -> str:
    return f"served onnxruntime backend, {threads} thread{'s' if threads > 1 else ''}"


def prepare_repository(output: Path, log) -> Path:
    """The benchmark model exported with its FP32 and INT8 ONNX variants, the BF16 TorchScript variant and the
    OpenVINO variants for CPU and its GPU configs (FP32 ONNX in NVIDIA's onnxruntime backend), reused when
    present."""
    from triton_ner.core.variants import Format, Precision, Target
    from triton_ner.export.fixture import benchmark_model
    from triton_ner.export.assemble import ExportPlan

    # Random weights have no real entities, only near-ties that INT8 rounding flips: 95% is the bar here; the
    # 99% bar holds on the trained fixture model (tests/integration/test_export.py).
    plan = ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT, Format.OPENVINO}),
                      frozenset({Precision.FP32, Precision.INT8, Precision.BF16}), Target.BOTH, min_agreement=0.95,
                      keep_going=True)
    wanted = (variants.GPU, *(variant for _, variant in SERVED if variant.config_name), OPENVINO_BACKEND[1])
    return cached_export(benchmark_model(), output, plan, tuple(v.config_name for v in wanted), log)


def onnxruntime_backend_repository(repository: Path, output: Path, threads: int) -> Path:
    """A copy of ``repository`` (hard links) whose model step's ``configs/gpu.pbtxt`` runs on CPU in NVIDIA's
    onnxruntime backend with ``threads`` intra-op threads: serve it with ``variants.GPU.config_name``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_ner.export.configs import on_cpu, render
    from triton_ner.core import names

    shutil.rmtree(output, ignore_errors=True)
    shutil.copytree(repository, output, copy_function=os.link)
    config = output / names.MODEL / "configs" / "gpu.pbtxt"
    switched = on_cpu(text_format.Parse(config.read_text(), mc.ModelConfig()), threads)
    config.unlink()  # a hard link to the original: write a new file
    config.write_text(render(switched))
    return output


def find_row(rows: list[Row], name: str, precision: str, concurrency: int | None = None) -> Row:
    """The row of ``name`` and ``precision`` (at ``concurrency``, when given)."""
    return next(r for r in rows if r.name == name and r.precision == precision
                and (concurrency is None or r.concurrency == concurrency))


def _measurable(specs) -> list[Check]:
    """The checks whose rows this run has: each spec is ``(text, figure, bound, at_least)`` with ``figure`` a
    function of no argument, which finds no row (StopIteration, ValueError) when a variant was left out."""
    checks = []
    for text, figure, bound, at_least in specs:
        try:
            checks.append(Check(text, figure(), bound, at_least))
        except (StopIteration, ValueError, KeyError):
            continue
    return checks


def targets(rows: list[Row]) -> list[Check]:
    """The serving targets, all ratios (or differences) of this run; those of a variant left out are left out."""
    def find(name, precision, concurrency=None):
        return find_row(rows, name, precision, concurrency)

    def served(p):
        return find("served", p, 32)

    def ceiling(p):
        return max((r for r in rows if r.name.startswith("in-process batch") and r.precision == p),
                   key=lambda r: r.texts_per_s)

    single = lambda: find("in-process batch 1", "fp32")  # noqa: E731
    return _measurable([
        *((f"served {p} c=32 / in-process {p} ceiling",
           lambda p=p: served(p).texts_per_s / ceiling(p).texts_per_s, 0.85, True) for p in ("fp32", "int8")),
        *((f"served {p} c=32 / pipeline one text per call",
           lambda p=p: served(p).texts_per_s / find("pipeline", "fp32").texts_per_s, 2.5, True)
          for p in ("fp32", "int8")),
        *((f"served {p} c=32 / pipeline batch_size=32",
           lambda p=p: served(p).texts_per_s / find("pipeline batch 32", "fp32").texts_per_s, 1.5, True)
          for p in ("fp32", "int8")),
        ("served fp32 c=1 p50 - in-process single-text p50 (ms)",
         lambda: find("served", "fp32", 1).percentile(50) - single().percentile(50), 3.0, False),
        ("served fp32 c=1 / in-process batch 1", lambda: find("served", "fp32", 1).texts_per_s / single().texts_per_s,
         0.85, True),
        ("served int8 c=32 / served fp32 c=32", lambda: served("int8").texts_per_s / served("fp32").texts_per_s, 1.6,
         True),
        # The default configuration's memory; the other rows' is in the table (BF16 loads PyTorch, the GPU configs
        # run on CPU have eight text-step processes).
        ("server memory under load, config.pbtxt (MB)",
         lambda: max(r.server_rss_mb or 0 for r in rows if r.name == "served" and r.precision == "fp32"), 1536.0,
         False),
        ("served bf16 c=32 / served fp32 c=32", lambda: served("bf16").texts_per_s / served("fp32").texts_per_s,
         BF16_GAIN, True),
    ])


def openvino_targets(rows: list[Row], proofs: dict) -> list[Check]:
    """OpenVINO against FP32 (config.pbtxt) in this run: throughput on the corpus and on its short sentences, server
    memory, and the export's entity agreement with FP32 (random weights: near-ties that rounding flips, so the bar
    is 95% here; the trained fixture model is held to 99% by the export's tests)."""
    def find(name, precision, concurrency):
        return find_row(rows, name, precision, concurrency)

    specs = []
    for suffix, label in (("", ""), (" short", f", sentences of at most {SHORT_WORDS} words")):
        for precision, concurrency, gain in OPENVINO_GAINS:
            specs.append((f"served openvino {precision} c={concurrency} / served fp32 c={concurrency}{label}",
                          lambda s=suffix, p=precision, c=concurrency: find(f"served openvino{s}", p, c).texts_per_s
                          / find(f"served{s}", "fp32", c).texts_per_s, gain, True))

    def memory(name, precision):
        return max(r.server_rss_mb or 0 for r in rows if r.name == name and r.precision == precision)

    specs.append(("server memory under load, openvino bf16 / config.pbtxt fp32",
                  lambda: memory("served openvino", "bf16") / memory("served", "fp32"), 1.0, False))
    for proof, precision in (("model_bf16.xml:bf16", "bf16"), ("model_int8.xml", "int8")):
        specs.append((f"openvino {precision}: entities identical to FP32 (export proof)",
                      lambda proof=proof: proofs[proof]["entity_agreement"], 0.95, True))
    return _measurable(specs)


# The matrix instructions reduced precisions run on: ratios between precisions depend on which the CPU has.
MATRIX_FLAGS = (("avx512_bf16", "AVX-512 BF16"), ("avx512_vnni", "AVX-512 VNNI"), ("amx_bf16", "AMX BF16"),
                ("amx_int8", "AMX INT8"))


def machine() -> str:
    """The measuring machine in words: its cores, its CPU's name and the matrix instructions it has."""
    from triton_ner.core.variants import cpu_flags

    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "CPU")
    flags = cpu_flags()
    matrix = ", ".join(label for flag, label in MATRIX_FLAGS if flag in flags)
    return f"{os.cpu_count()} CPUs, {name} ({matrix or 'no AVX-512 BF16, VNNI or AMX'})"


def run_results(rows: list[Row], checks: list[Check], corpus: dict, left_out: dict[str, str] | None = None) -> dict:
    """What ``bench.json`` holds: the run's date and machine, its corpus, each row's summary, the targets, and the
    rows left out with why (a variant whose export proof failed on this machine)."""
    return {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "corpus": corpus,
            "rows": [r.summary() for r in rows], "targets": [c.summary() for c in checks],
            "left_out": left_out or {}}


def markdown(results: dict) -> str:
    """The tables of one run, from what ``bench.json`` holds (rows as :meth:`Row.summary`, targets)."""
    rows = results["rows"]
    lines = ["| configuration | precision | concurrency | texts/s | p50 ms | p95 ms | p99 ms | server RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["tokens"] is None:
            rss = f"{r['server_rss_mb']:.0f}" if r["server_rss_mb"] else "-"
            lines.append(f"| {r['name']} | {r['precision']} | {r['concurrency'] or '-'} | {r['texts_per_s']:.1f} | "
                         f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {rss} |")
    if any(r["tokens"] is not None for r in rows):
        lines += ["", "| words per text | texts/s | tokens/s | p50 ms |", "|---|---|---|---|"]
    for r in rows:
        if r["tokens"] is not None:
            lines.append(f"| {r['name'].split()[-1]} | {r['texts_per_s']:.2f} | {r['tokens'] / r['seconds']:.0f} | "
                         f"{r['p50_ms']:.0f} |")
    ort = [t for t in ORT_THREADS if any(r["name"] == ort_row_name(t) for r in rows)]
    if ort:
        lines += ["", "| concurrency | Python-backend runner texts/s | "
                  + " | ".join(f"onnxruntime backend {t} thr. texts/s (ratio)" for t in ort) + " |",
                  "|---" * (2 + len(ort)) + "|"]
        for python in (r for r in rows if r["name"] == "served" and r["precision"] == "fp32"):
            cells = []
            for t in ort:
                row = next((r for r in rows if r["name"] == ort_row_name(t)
                            and r["concurrency"] == python["concurrency"]), None)
                cells.append(f"{row['texts_per_s']:.1f} ({row['texts_per_s'] / python['texts_per_s']:.2f}x)"
                             if row else "-")
            lines.append(f"| {python['concurrency']} | {python['texts_per_s']:.1f} | " + " | ".join(cells) + " |")
    if results["targets"]:
        lines += ["", checks_table(results["targets"])]
    if results.get("left_out"):
        lines += ["", "Not measured on this machine:", "",
                  *(f"- {row}: {why}" for row, why in results["left_out"].items())]
    return "\n".join(lines)


def results_page(results: dict) -> str:
    """``docs/bench-results.md``: the run's tables and plot, written by ``make bench`` (never by hand)."""
    corpus = results["corpus"]
    when = results.get("date", "date not recorded")
    return (f"# make bench: one run ({when})\n\n"
            f"Written by `make bench` from its `bench.json` (copied beside this page); see "
            f"[benchmarks.md](benchmarks.md) for what each row measures. Corpus: {corpus['texts']} texts "
            f"({corpus['words']} words), seed {corpus['seed']}; \"short\" rows: its sentences of at most "
            f"{SHORT_WORDS} words alone; machine: {results.get('machine', 'not recorded')}."
            f"\n\n{markdown(results)}\n\n![throughput and p99 against concurrency](bench.png)\n")


def write_docs(output: Path, docs: Path) -> None:
    """Copy the run's ``bench.json`` and ``bench.png`` from ``output`` into ``docs`` and write its page there."""
    results = json.loads((output / "bench.json").read_text())
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("bench.json", "bench.png"):
        if (output / name).exists() and (output / name).resolve() != (docs / name).resolve():
            shutil.copyfile(output / name, docs / name)
    (docs / "bench-results.md").write_text(results_page(results))


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for precision, colour in (("fp32", "tab:blue"), ("int8", "tab:orange"), ("bf16", "tab:red")):
        served = [r for r in rows if r.name == "served" and r.precision == precision]
        if not served:
            continue
        xs = [r.concurrency for r in served]
        left.plot(xs, [r.texts_per_s for r in served], "o-", color=colour, label=f"served {precision}")
        right.plot(xs, [r.percentile(99) for r in served], "o-", color=colour, label=f"served {precision}")
        ceiling = max(r.texts_per_s for r in rows if r.name.startswith("in-process batch") and r.precision == precision)
        left.axhline(ceiling, color=colour, linestyle=":", label=f"in-process {precision} ceiling")
    for precision, colour in (("fp32", "tab:cyan"), ("int8", "tab:brown"), ("bf16", "tab:purple")):
        served = [r for r in rows if r.name == "served openvino" and r.precision == precision]
        for axis, values in ((left, [r.texts_per_s for r in served]), (right, [r.percentile(99) for r in served])):
            axis.plot([r.concurrency for r in served], values, "^-", color=colour,
                      label=f"served openvino {precision}")
    for threads, colour in zip(ORT_THREADS, ("tab:green", "tab:olive")):
        ort = [r for r in rows if r.name == ort_row_name(threads)]
        if ort:
            for axis, values in ((left, [r.texts_per_s for r in ort]), (right, [r.percentile(99) for r in ort])):
                axis.plot([r.concurrency for r in ort], values, "s--", color=colour,
                          label=f"fp32, NVIDIA onnxruntime backend, {threads} thr.")
    for name, style in (("pipeline", "--"), ("pipeline batch 32", "-.")):
        row = next(r for r in rows if r.name == name)
        left.axhline(row.texts_per_s, color="grey", linestyle=style, label=f"transformers {name}")
    left.set(xlabel="concurrent clients", ylabel="texts/s", title="Throughput", xscale="log")
    right.set(xlabel="concurrent clients", ylabel="p99 latency (ms)", title="Tail latency", xscale="log",
              yscale="log")
    plots.finish(figure, (left, right), CONCURRENCY, path)


def ceiling_section(full_size: Path, repository: Path, output: Path, docs: Path, say) -> None:
    """The serving path's ceiling (:mod:`triton_ner.loadtest.ceiling`): its table, targets, JSON and plot, and the
    docs page of the table and plot (``docs/ceiling.md``)."""
    from triton_ner.loadtest import ceiling
    from triton_ner.server import onnxruntime_backend

    fixture = ceiling.fixture_repository(repository.with_name(f"{repository.name}-fixture"),
                                         lambda m: say(f"export: {m}"))
    points = ceiling.serve_points(fixture, ceiling.CPU_DEFAULT, say)
    if onnxruntime_backend() is None:
        say("NVIDIA's onnxruntime backend is not built (make backends): no GPU-config rows in the ceiling")
    else:
        switched = onnxruntime_backend_repository(fixture, repository.with_name(f"{repository.name}-fixture-gpu"), 1)
        points += ceiling.serve_points(switched, ceiling.GPU_ON_CPU, say, config_name=variants.GPU.config_name)
        switched = onnxruntime_backend_repository(full_size, repository.with_name(f"{repository.name}-onnxruntime"), 1)
        points += ceiling.serve_points(switched, ceiling.FULL_SIZE_GPU, say, config_name=variants.GPU.config_name, loads=((64, 1),),
                                       seconds=20.0)
    found = [c.summary() for c in ceiling.targets(points)]
    table = ceiling.markdown(points) + "\n\n" + checks_table(found)
    print(table)
    (output / "ceiling.md").write_text(table + "\n")
    (output / "ceiling.json").write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "points": [p.summary() for p in points],
        "targets": found}, indent=2) + "\n")
    ceiling.plot(points, output / "ceiling.png")
    say(f"wrote {output / 'ceiling.md'}, ceiling.json and ceiling.png")
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output / "ceiling.png", docs / "ceiling.png")
    (docs / "ceiling.md").write_text(ceiling.page(table, f"{time.strftime('%Y-%m-%d')}, {machine()}"))
    say(f"wrote {docs / 'ceiling.md'} and {docs / 'ceiling.png'}")


def tail_section(repository: Path, output: Path, docs: Path, say) -> None:
    """Tail latency over windows (:mod:`triton_ner.loadtest.tail`) on the fixture export: table, targets, JSON and
    the docs page (``docs/tail.md``)."""
    from triton_ner.loadtest import ceiling, tail

    fixture = ceiling.fixture_repository(repository.with_name(f"{repository.name}-fixture"),
                                         lambda m: say(f"export: {m}"))
    found = tail.measure(fixture, say)
    checks = [c.summary() for c in tail.targets(found)]
    table = tail.markdown(found) + "\n\n" + checks_table(checks)
    print(table)
    (output / "tail.json").write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "windows": [asdict(w) for w in found],
        "targets": checks}, indent=2) + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "tail.md").write_text(tail.page(table, f"{time.strftime('%Y-%m-%d')}, {machine()}"))
    say(f"wrote {output / 'tail.json'} and {docs / 'tail.md'}")


@app.command()
def main(
    texts: Annotated[int, typer.Option(min=32, help="Texts of the corpus per measurement.")] = 384,
    output: Annotated[Path, typer.Option(help="Folder for bench.json and bench.png.")] = Path("results/bench"),
    repository: Annotated[Path, typer.Option(help="Where the benchmark model is exported (reused).")]
    = Path(".cache/bench-repository"),
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 0,
    docs: Annotated[Path, typer.Option(help="Where the docs pages of a whole run and of the ceiling are written "
                                            "(bench-results.md, ceiling.md, their JSON and plots).")] = Path("docs"),
    only: Annotated[Rows, typer.Option(help="Which rows: all; onnxruntime-backend: the served FP32 rows of the "
                                            "Python-backend runner and NVIDIA's onnxruntime backend; bf16: FP32 "
                                            "and BF16 in process and served (no targets, no plot); openvino: FP32 "
                                            "and OpenVINO's FP32, BF16 and INT8, with their targets (no plot); "
                                            "ceiling: the serving path around the fixture model; tail: tail "
                                            "latency over windows from ready, gRPC and HTTP.")]
    = Rows.ALL,
) -> None:
    """Benchmark the served ensemble against the transformers pipeline and the in-process ceiling."""
    from transformers import pipeline

    from triton_ner.core import names
    from triton_ner.core.inprocess import LocalNer
    from triton_ner.server import TritonServer, built_backend, free_ports, onnxruntime_backend
    from triton_ner.core.tokenization import load_vocabulary

    def say(message: str) -> None:
        cli.say("bench", message)

    everything = only is Rows.ALL
    if only is Rows.ONNXRUNTIME_BACKEND and onnxruntime_backend() is None:
        raise cli.fail("bench", "NVIDIA's onnxruntime backend is not built: run `make backends`")
    output.mkdir(parents=True, exist_ok=True)
    if only is Rows.TAIL:
        tail_section(repository, output, docs, say)
        return
    repo = prepare_repository(repository, lambda m: say(f"export: {m}"))
    tokenizer_dir = repo / names.TEXT_STEP / "1" / names.TOKENIZER_DIR
    corpus = benchmark_corpus(texts, seed)
    rows: list[Row] = []

    def record(row: Row) -> None:
        rows.append(row)
        say(f"{row.name} {row.precision} c={row.concurrency or '-'}: {row.texts_per_s:.1f} texts/s, "
            f"p50 {row.percentile(50):.1f} ms")

    def served_rows(server: TritonServer, name: str, precision: str) -> None:
        served_run(server.grpc_url, corpus[:64], 8)  # warm-up
        for concurrency in CONCURRENCY:
            with MemorySampler(server.process.pid) as memory:
                seconds, latencies = served_run(server.grpc_url, corpus, concurrency)
            record(Row(name, precision, concurrency, len(corpus), seconds, latencies, memory.peak_mb))

    if only is Rows.CEILING:
        ceiling_section(repo, repository, output, docs, say)
        return
    if everything:
        say("transformers pipeline")
        pipe = pipeline("token-classification",
                        model=str(json.loads((repo / names.MANIFEST).read_text())["source"]),
                        aggregation_strategy="simple")
        pipe(corpus[:8])
        record(Row("pipeline", "fp32", None, len(corpus), *timed_calls(lambda b: pipe(b[0]), corpus, 1)))
        record(Row("pipeline batch 32", "fp32", None, len(corpus),
                   *timed_calls(lambda b: pipe(b, batch_size=32), corpus, 32)))
        del pipe

    openvino = everything or only is Rows.OPENVINO
    short = [text for text in corpus if len(text.split()) <= SHORT_WORDS]
    manifest = json.loads((repo / names.MANIFEST).read_text())
    refused = {name: entry["error"] for entry in manifest.get("refused", {}).values() for name in entry["config_names"]}
    left_out: dict[str, str] = {}
    for name, variant in SERVED:
        precision, config_name = variant.precision.value, variant.config_name or None
        wanted = (name == "served" and precision == "fp32") or everything or (
            only is Rows.BF16 and name == "served" and precision == "bf16") or (
            only is Rows.OPENVINO and name == "served openvino")
        if not wanted:
            continue
        if variant.config_name in refused:
            left_out[f"{name} {precision}"] = refused[variant.config_name]
            say(f"{name} {precision}: not measured, the export left it out: {refused[variant.config_name]}")
            continue
        if everything or only in (Rows.BF16, Rows.OPENVINO):
            local = LocalNer(repo / names.MODEL / "1" / variant.model_file, tokenizer_dir,
                             precision=variant.run_precision.value)
            local.predict(corpus[:32])
            for batch in IN_PROCESS_BATCHES:
                record(Row(f"{name.replace('served', 'in-process')} batch {batch}", precision, None, len(corpus),
                           *timed_calls(local.predict, corpus, batch)))
            del local
        with TritonServer(repo, free_ports(), config_name=config_name) as server:
            served_rows(server, name, precision)
            if openvino and (name, variant) in SHORT:
                for concurrency in SHORT_CONCURRENCY:
                    with MemorySampler(server.process.pid) as memory:
                        seconds, latencies = served_run(server.grpc_url, short, concurrency)
                    record(Row(f"{name} short", precision, concurrency, len(short), seconds, latencies,
                               memory.peak_mb))
            if precision == "fp32" and everything:
                tokenizer = load_vocabulary(tokenizer_dir).tokenizer
                for words in LENGTHS:
                    sample = length_sample(words)
                    tokens = sum(map(len, tokenizer(sample, add_special_tokens=False, verbose=False)["input_ids"]))
                    seconds, latencies = served_run(server.grpc_url, sample, 8)
                    record(Row(f"served fp32 c=8, words {words}", precision, 8, len(sample), seconds, latencies,
                               tokens=tokens))

    if openvino:
        name, variant = OPENVINO_BACKEND
        precision, config_name = variant.precision.value, variant.config_name
        if config_name in refused:
            left_out[f"{name} {precision}"] = refused[config_name]
            say(f"{name} {precision}: not measured, the export left it out: {refused[config_name]}")
        elif built_backend("openvino") is None:
            say("NVIDIA's openvino backend is not built (make backends): no rows for it")
        else:
            with TritonServer(repo, free_ports(), config_name=config_name) as server:
                served_rows(server, name, precision)

    if only in (Rows.BF16, Rows.OPENVINO):
        pass
    elif onnxruntime_backend() is None:
        say("NVIDIA's onnxruntime backend is not built (make backends): no rows for it")
    else:
        for threads in ORT_THREADS:
            ort_repo = onnxruntime_backend_repository(repo, repository.with_name(f"{repository.name}-onnxruntime"),
                                                      threads)
            with TritonServer(ort_repo, free_ports(), config_name=variants.GPU.config_name) as server:
                served_rows(server, ort_row_name(threads), "fp32")

    if everything:
        ceiling_section(repo, repository, output, docs, say)
        tail_section(repository, output, docs, say)

    checks = targets(rows) if everything else []
    if openvino:
        checks += openvino_targets(rows, manifest["proofs"])
    results = run_results(rows, checks, {"texts": len(corpus), "seed": seed, "words": "5-40, 3% of 600"}, left_out)
    print(markdown(results))
    (output / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    if everything:
        plot(rows, output / "bench.png")
        write_docs(output, docs)
        say(f"wrote {output / 'bench.json'}, {output / 'bench.png'} and {docs / 'bench-results.md'}")
    else:
        say(f"wrote {output / 'bench.json'}")


if __name__ == "__main__":
    app()

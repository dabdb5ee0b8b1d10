"""The benchmark's rows, their targets and what a run writes: ``bench.json``, the Markdown tables, the docs
page and the plot."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from triton_ner_loadtest import plots
from triton_ner_loadtest.checks import Check, checks_table

CONCURRENCY = (1, 8, 32)


SHORT_WORDS = 40  # the corpus' sentences (5 to 40 words), without its 600-word documents


ORT_THREADS = (1, 2)  # intra_op_thread_count of NVIDIA's onnxruntime backend: on 2 cores both are worth a row


def ort_row_name(threads: int) -> str:
    return f"served onnxruntime backend, {threads} thread{'s' if threads > 1 else ''}"



BF16_GAIN = 1.3  # served BF16 (TorchScript, AVX-512 BF16) over served FP32 (ONNX Runtime, fused graph)


# Served OpenVINO over served FP32 (config.pbtxt): BF16 at 32 clients and at 1, INT8 at 32.
OPENVINO_GAINS = (("bf16", 32, 2.0), ("bf16", 1, 1.5), ("int8", 32, 3.0))


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


def find_row(rows: list[Row], name: str, precision: str, concurrency: int | None = None) -> Row:
    """The row of ``name`` and ``precision`` (at ``concurrency``, when given)."""
    return next(r for r in rows if r.name == name and r.precision == precision
                and (concurrency is None or r.concurrency == concurrency))


def _measurable(specs: Iterable[tuple[str, Callable[..., float], float, bool]]) -> list[Check]:
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
    def find(name: str, precision: str, concurrency: int | None = None) -> Row:
        return find_row(rows, name, precision, concurrency)

    def served(p: str) -> Row:
        return find("served", p, 32)

    def ceiling(p: str) -> Row:
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
        # run on CPU have --gpu-text-instances text-step processes).
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
    def find(name: str, precision: str, concurrency: int) -> Row:
        return find_row(rows, name, precision, concurrency)

    specs: list[tuple[str, Callable[..., float], float, bool]] = []
    for suffix, label in (("", ""), (" short", f", sentences of at most {SHORT_WORDS} words")):
        for precision, concurrency, gain in OPENVINO_GAINS:
            specs.append((f"served openvino {precision} c={concurrency} / served fp32 c={concurrency}{label}",
                          lambda s=suffix, p=precision, c=concurrency: find(f"served openvino{s}", p, c).texts_per_s
                          / find(f"served{s}", "fp32", c).texts_per_s, gain, True))

    def memory(name: str, precision: str) -> float:
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
    for threads, colour in zip(ORT_THREADS, ("tab:green", "tab:olive"), strict=True):
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

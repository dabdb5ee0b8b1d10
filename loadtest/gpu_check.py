"""``make gpu-check``: a one-shot validation and benchmark on a machine with an NVIDIA GPU and PyTorch.

Steps, in one process, with a time budget (5 minutes by default; the whole check ends within 6):

1. the full-size benchmark model (DistilBERT with random weights, built in seconds) traced to TorchScript with
   the exporter (``export.convert.export_torchscript``);
2. proofs: no device constant in the traced file; the project's runner on ``cuda`` in FP32 within 1e-3 of
   PyTorch on CPU (proof texts up to 512 tokens) and of the CPU runner (agreement corpus); FP16 and BF16 on
   ``cuda`` finding the same entities as CPU FP32 on the exporter's agreement corpus (:data:`MIN_AGREEMENT`);
3. the model alone (the project's runner, host arrays in and out) at batch 1-256 × 16-512 tokens per precision:
   median latency, sequences/s, tokens/s, CUDA-synchronised, after warmup;
4. the served ensemble, TorchScript export, ``configs/cuda.pbtxt`` (the Python-backend runner in FP16 on the GPU;
   ``config.pbtxt`` on CPU), at concurrency 1-256 with 1 and 8 short texts per request over Triton's HTTP/JSON
   API: texts/s, latency, ``ner_model``'s average batch, against the model alone. Triton comes from the serving
   pack (``make gpu-check-pack``, :mod:`loadtest.gpu_pack`) when there is one, else from the installed
   nvidia-pytriton wheel; with neither, the step is recorded as skipped, which is not a failure.

It writes ``results/gpu-check/gpu_check.json``, prints Markdown tables and exits 1 when a proof fails or a step
raises. Without a GPU (or with ``--dry-run``) the same steps run on CPU with the fixture model and a small grid,
in about a minute: ``tests/integration/test_gpu_check.py`` runs that dry run, through a serving pack too.

On the GPU machine steps 1-4 need torch, transformers, tokenizers and numpy and the project's source tree, never
tritonclient, grpc, protobuf or onnx; the models are built there (the 260 MB benchmark weights never travel).
Where Triton is not installed, make the pack where it is and copy it along (``build/gpu-check/``). From the
repository root::

    make gpu-check-pack                  # where the local Triton is installed (make setup); about 40 MB
    make gpu-check                       # .venv/bin/python if there is one, else python3 (PYTHON=...)
    python -m triton_ner.loadtest.gpu_check --help
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from triton_ner import cli
from triton_ner.core import variants
from triton_ner.loadtest.gpu_pack import DEFAULT_PACK

PRECISIONS = ("fp32", "fp16", "bf16")  # proven
FP32_TOLERANCE = 1e-3
# Entity agreement with CPU FP32 on the agreement corpus. The benchmark model has random weights, so many tokens
# are near-ties between labels that rounding flips; on CPU (torch 2.13) FP16 agreed 99.8% and BF16 (8 bits of
# mantissa) 98.8% over 4,180 entities. The bounds leave room for the GPU's other summation order and still
# catch a broken precision (overflow, NaN, a wrong mask), which agrees on next to nothing.
MIN_AGREEMENT = {"fp16": 0.98, "bf16": 0.95}
SKIPPED_NO_TRITON = ("skipped: no serving pack and no local tritonserver (make gpu-check-pack where the "
                     "nvidia-pytriton wheel is installed)")
SKIPPED_BUDGET = "skipped: time budget spent"
DEFAULT_OUTPUT = Path("results/gpu-check")
DEFAULT_BUDGET_S = 300.0
GRID_SHARE = 0.7  # the model-alone grid stops at this share of the budget, leaving the rest to the served step


@dataclass(frozen=True)
class Runner:
    """One way of running the traced model alone: its precision, the attention traced into the file (``sdpa`` or
    ``eager``) and whether calls replay CUDA graphs of fixed shapes (the cuda variant's runner) or launch each
    kernel."""

    precision: str
    attention: str = "sdpa"
    graphs: bool = True

    @property
    def name(self) -> str:
        return f"{self.precision} {self.attention}{' graphs' if self.graphs else ''}"


SERVED_RUNNER = Runner("fp16")  # what configs/cuda.pbtxt runs
# The served runner first, then each means taken away in turn (graphs, fused attention), then the other precisions.
GPU_RUNNERS = (SERVED_RUNNER, Runner("fp16", graphs=False), Runner("fp16", "eager", graphs=False),
               Runner("fp16", "eager"), Runner("bf16"), Runner("fp32"))


def served_shapes():
    """The fixed shapes of the cuda variant's runner, from the export's defaults."""
    from triton_ner.core.batching import GPU_MAX_ROWS, MAX_TOKENS_PER_RUN, PAD_LENGTHS
    from triton_ner.core.cuda_graphs import Shapes

    return Shapes(PAD_LENGTHS, GPU_MAX_ROWS, MAX_TOKENS_PER_RUN)


@dataclass(frozen=True)
class Plan:
    """What one run does: full size on a GPU, or the CPU dry run."""

    dry_run: bool
    device: str
    model: str  # "benchmark" (full size, random weights) or "fixture" (tiny, trained)
    batches: tuple[int, ...]
    lengths: tuple[int, ...]
    warmup: int
    repeats: int
    concurrency: tuple[int, ...]
    texts_per_request: tuple[int, ...]
    served_seconds: float  # of load per served cell
    runners: tuple[Runner, ...]  # measured alone
    served: Runner  # what the served step runs


FULL = Plan(False, "cuda", "benchmark", (1, 8, 32, 128, 256), (16, 64, 128, 512), warmup=3, repeats=10,
            concurrency=(1, 16, 64, 256), texts_per_request=(1, 8), served_seconds=5.0, runners=GPU_RUNNERS,
            served=SERVED_RUNNER)
DRY_RUN = Plan(True, "cpu", "fixture", (1, 8), (16, 64), warmup=2, repeats=3, concurrency=(1, 16),
               texts_per_request=(1, 8), served_seconds=1.5,
               runners=(Runner("fp32", graphs=False), Runner("fp32"), Runner("fp32", "eager", graphs=False)),
               served=Runner("fp32", graphs=False))  # config.pbtxt on CPU
SERVED_TEXTS = 512  # short sentences, sent in turn


@dataclass
class Proof:
    """One proof: a figure, its bound, and whether it must be at least (agreement) or at most (Δ) the bound."""

    key: str  # stable: device_constants, half_constants, fp32_logits_eager, fp32_logits_corpus, fp16_agreement, bf16_agreement
    name: str
    measured: float | None
    bound: float
    at_least: bool
    detail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        if self.error is not None or self.measured is None or not math.isfinite(self.measured):
            return False
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def summary(self) -> dict:
        data = asdict(self) | {"ok": self.ok}
        if self.measured is not None and not math.isfinite(self.measured):
            data["measured"], data["detail"] = None, f"{self.measured} {self.detail}".strip()
        return data


def _one_line(error: BaseException) -> str:
    message = str(error).strip()
    return f"{type(error).__name__}: {message.splitlines()[0]}" if message else type(error).__name__


def _environment(device: str) -> dict:
    import tokenizers
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "tokenizers": tokenizers.__version__, "numpy": np.__version__, "device": device,
           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                "compute_capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version()}
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


@dataclass
class Traced:
    """Step 1's result: the checkpoint, its eager PyTorch model and tokenizer, and the traced files: the export's
    (fused attention) and one with transformers' eager attention, measured beside it."""

    checkpoint: Path
    model: object
    tokenizer: object
    torchscript: Path
    torchscript_eager: Path

    def file(self, runner: Runner) -> Path:
        return self.torchscript if runner.attention == "sdpa" else self.torchscript_eager


def trace(plan: Plan, work: Path) -> Traced:
    """Step 1: build (or reuse) the plan's model and trace it with the project's exporter, twice."""
    from transformers import AutoTokenizer

    from triton_ner.export import convert
    from triton_ner.export.fixture import benchmark_model, fixture_model

    checkpoint = benchmark_model() if plan.model == "benchmark" else fixture_model()
    model = convert.load_model(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return Traced(checkpoint, model, tokenizer, convert.export_torchscript(model, tokenizer, work / "model.pt"),
                  convert.export_torchscript(model, tokenizer, work / "model_eager.pt", attention="eager"))


def prove(plan: Plan, traced: Traced, log: Callable[[str], None]) -> tuple[list[Proof], list[dict]]:
    """Step 2: every precision on the plan's device, in the cuda variant's runner (fixed shapes, CUDA graphs on a
    GPU), against CPU FP32; the proofs and each precision's figures."""
    from triton_ner.export import convert
    from triton_ner.core.aggregation import aggregate_texts
    from triton_ner.core.model_runs import run_in_groups
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.runners import load_runner
    from triton_ner.core.tokenization import load_vocabulary, prepare

    vocab = load_vocabulary(traced.checkpoint)
    texts = convert.agreement_corpus()
    # The served code path, as convert.corpus_entities runs it, with the runner on any device and precision.
    batch = prepare(vocab.tokenizer, texts, RequestOptions(), max_windows=1 << 30)
    real = batch.attention_mask.astype(bool)

    def run_corpus(run) -> tuple[np.ndarray, set[tuple]]:
        logits = run_in_groups(run, batch.input_ids, batch.attention_mask, 16384)
        found = aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                                batch.text_index, vocab)
        return logits, {(i, e["entity_group"], e["start"], e["end"]) for i, f in enumerate(found) for e in f}

    # A device constant in the traced graph would keep part of the model on the tracing device (CPU) on the GPU.
    constants = convert.torchscript_constants(traced.torchscript)
    overflowing = convert.torchscript_overflowing_constants(traced.torchscript)
    proofs = [Proof("device_constants", "device constants in the traced file", len(constants), 0, False,
                    ", ".join(constants)),
              Proof("half_constants", "constants of the traced file infinite in BF16 or FP16", len(overflowing), 0,
                    False, ", ".join(map(str, overflowing)))]
    reference_logits, reference = run_corpus(load_runner(traced.torchscript, device="cpu"))
    log(f"reference: CPU FP32 runner, {len(texts)} texts, {len(batch.input_ids)} windows, {len(reference)} entities")
    figures: list[dict] = []
    for precision in PRECISIONS:
        where = f"{plan.device} {precision}"
        try:
            run = load_runner(traced.torchscript, device=plan.device, precision=precision, shapes=served_shapes())
            logits, found = run_corpus(run)
            delta = float(np.abs(logits - reference_logits)[real].max())
            agreement = convert.entity_agreement(reference, found, MIN_AGREEMENT.get(precision, 1.0))
            figures.append({"precision": precision, "max_abs_logit_diff": delta,
                            "entity_agreement": agreement.agreement, "reference_entities": len(reference),
                            "variant_entities": len(found)})
            log(f"{where}: max |Δ logits| {delta:.2e}, {agreement.agreement:.2%} of entities identical")
            if precision == "fp32":
                eager = convert.prove_logits(traced.model, traced.tokenizer, run)
                proofs.append(Proof("fp32_logits_eager",
                                    f"{where} logits vs PyTorch CPU fp32 (proof texts, up to 512 tokens): max |Δ|",
                                    eager.max_abs_diff, FP32_TOLERANCE, False, f"{eager.batches} batches"))
                proofs.append(Proof("fp32_logits_corpus", f"{where} logits vs CPU fp32 runner (agreement corpus): "
                                    "max |Δ|", delta, FP32_TOLERANCE, False, f"{len(batch.input_ids)} windows"))
            else:
                proofs.append(Proof(f"{precision}_agreement", f"{where} entities vs CPU fp32 (agreement corpus): "
                                    "agreement", agreement.agreement, agreement.minimum, True,
                                    f"{len(found)} vs {len(reference)} entities; max |Δ logits| {delta:.2e}"))
            del run
        except Exception as error:  # noqa: BLE001: a failing precision is a failed proof, and the run goes on
            log(f"{where}: {_one_line(error)}")
            if precision == "fp32":
                proofs.append(Proof("fp32_logits_eager", f"{where} logits vs CPU fp32: max |Δ|", None,
                                    FP32_TOLERANCE, False, error=_one_line(error)))
            else:
                proofs.append(Proof(f"{precision}_agreement", f"{where} entities vs CPU fp32: agreement", None,
                                    MIN_AGREEMENT[precision], True, error=_one_line(error)))
        _release(plan.device)
    return proofs, figures


def _release(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def time_run(run, input_ids: np.ndarray, attention_mask: np.ndarray, sync: Callable[[], None], warmup: int,
             repeats: int, max_seconds: float = 5.0) -> list[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` calls (at least 3 calls once ``max_seconds`` pass)."""
    for _ in range(warmup):  # TorchScript's profiling executor specializes on the first calls of a shape
        run(input_ids, attention_mask)
    times: list[float] = []
    while len(times) < repeats and not (len(times) >= 3 and sum(times) > max_seconds):
        sync()
        started = time.perf_counter()
        run(input_ids, attention_mask)
        sync()
        times.append(time.perf_counter() - started)
    return times


def _gpu_memory_gib(device: str) -> float | None:
    """GiB the caching allocator holds on ``device`` (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.memory_reserved(device) / 2**30


def measure(plan: Plan, traced: Traced, deadline: float, log: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """Step 3: each of the plan's runners alone over its grid of batch sizes and lengths; the grid's cells and each
    runner's load (seconds, capture included, and GPU memory held)."""
    import torch

    from triton_ner.core.runners import load_runner

    sync = torch.cuda.synchronize if plan.device.startswith("cuda") else (lambda: None)
    vocab_size = traced.model.config.vocab_size
    rows: list[dict] = []
    loads: list[dict] = []
    for runner in plan.runners:
        precision = runner.precision
        if time.monotonic() > deadline:
            loads.append({"runner": runner.name, "error": SKIPPED_BUDGET})
            continue
        started = time.monotonic()
        try:
            run = load_runner(traced.file(runner), device=plan.device, precision=precision,
                              shapes=served_shapes() if runner.graphs else None)
        except Exception as error:  # noqa: BLE001: recorded, the other runners still run
            loads.append({"runner": runner.name, "error": _one_line(error)})
            continue
        loads.append({"runner": runner.name, "load_s": time.monotonic() - started,
                      "gpu_memory_gib": _gpu_memory_gib(plan.device)})
        log(f"{runner.name}: loaded in {loads[-1]['load_s']:.1f} s")
        rng = np.random.default_rng(0)
        for batch in plan.batches:
            for length in plan.lengths:
                row = {"runner": runner.name, "precision": precision, "batch": batch, "length": length}
                if time.monotonic() > deadline:
                    rows.append(row | {"error": SKIPPED_BUDGET})
                    continue
                ids = rng.integers(min(1000, vocab_size // 2), vocab_size, (batch, length), dtype=np.int64)
                mask = np.ones_like(ids)
                try:
                    times = time_run(run, ids, mask, sync, plan.warmup, plan.repeats)
                except Exception as error:  # noqa: BLE001: out of memory, say; the grid goes on
                    rows.append(row | {"error": _one_line(error)})
                    _release(plan.device)
                    continue
                median = statistics.median(times)
                rows.append(row | {"runs": len(times), "latency_ms": median * 1000, "min_ms": min(times) * 1000,
                                   "sequences_per_s": batch / median, "tokens_per_s": batch * length / median})
            log(f"model alone {runner.name} batch {batch}: " + ", ".join(
                f"{r['length']} tokens {r['latency_ms']:.2f} ms" if "latency_ms" in r else f"{r['length']} tokens -"
                for r in rows if r.get("batch") == batch and r["runner"] == runner.name))
        del run
        _release(plan.device)
    return rows, loads


def local_triton() -> bool:
    """Whether the local Triton (nvidia-pytriton) and the export's config writer (protobuf) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("pytriton", "google.protobuf"))


@dataclass(frozen=True)
class Served:
    """What step 4 serves: the repository, the Triton runtime folder (None: the installed wheel) and the python3
    of the steps' environment (None: this interpreter's)."""

    repository: Path
    runtime: Path | None = None
    steps_python: Path | None = None


def _checkout() -> list[Path]:
    """The source checkout holding ``triton_ner``, when the package runs from one (``[]`` when installed)."""
    import triton_ner

    root = Path(triton_ner.__file__).resolve().parents[1]
    return [root] if (root / "pyproject.toml").is_file() else []


def _served_repository(plan: Plan, traced: Traced, work: Path, pack: Path | None,
                       log: Callable[[str], None]) -> Served | None:
    """What to serve, or None when neither a pack nor the local Triton is there. Through a pack, the steps get an
    environment of their own: this machine's packages behind the pack's numpy (below 2), so that a machine whose
    Python has numpy 2 serves as it comes."""
    from triton_ner.loadtest import gpu_pack
    from triton_ner.server import environment

    if pack is not None and pack.is_file():
        unpacked = gpu_pack.unpack(pack, work / "pack", plan.model, traced.torchscript)
        started = time.monotonic()
        python = environment.make(work / "steps-env", [unpacked.steps_packages], _checkout())
        found = environment.probe(python)
        log(f"serving through the pack {pack}; the steps' environment: numpy {found.numpy} over this Python's "
            f"packages ({time.monotonic() - started:.1f} s)")
        return Served(unpacked.repository, unpacked.runtime, python)
    if not local_triton():
        return None
    from triton_ner.export.assemble import build
    from triton_ner.export.source import Checkpoint

    repository = work / "model_repository"
    build(Checkpoint(traced.checkpoint, plan.model), repository, gpu_pack.export_plan(),
          log=lambda m: log(f"export {m}"))
    return Served(repository)


def _model_alone_reference(grid: list[dict], runner: Runner, batch: float | None, tokens: int) -> dict | None:
    """The model-alone cell to hold a served row against: the served runner, the smallest grid batch at least
    ``batch`` (else the largest), at the smallest grid length at least ``tokens`` (else the longest)."""
    cells = [r for r in grid if r.get("runner") == runner.name and "sequences_per_s" in r]
    if not cells or batch is None:
        return None
    lengths = sorted({r["length"] for r in cells})
    length = next((n for n in lengths if n >= tokens), lengths[-1])
    batches = sorted({r["batch"] for r in cells if r["length"] == length})
    size = next((b for b in batches if b >= batch), batches[-1])
    return next(r for r in cells if r["length"] == length and r["batch"] == size)


BUSY = 0.8  # a part busier than this share of its time is what limits a row


def _limit(row: dict, instances: dict[str, int]) -> dict:
    """How busy each part was over a served row, as a share of its time (its instances or processes together),
    and what limits the row: the busiest of the load generator, the host's cores (server and generator), the
    model step's executes (GPU work and the host work around it) and the text step's own work (tokenization,
    aggregation) when one is above :data:`BUSY`; else the text step's instances when they are (busy waiting on
    the model step: more of them would overlap that wait); else the clients, too few to keep any part busy."""
    rate = row["texts_per_s"] / 1000  # texts per ms
    text, model = row["steps"].get("ner_text", {}), row["steps"].get("ner_model", {})
    cpu = row.get("server_cpu_ms_per_text"), row.get("generator_cpu_ms_per_text")
    busy = {"load generator": row.get("generator_busy"),
            "host cores": None if None in cpu else sum(cpu) * rate / (os.cpu_count() or 1),
            "ner_model executes": (model.get("compute_ms_per_text") or 0) * rate / instances["ner_model"],
            "ner_text own work": (row.get("text_step_own_ms_per_text") or 0) * rate / instances["ner_text"],
            "ner_text instances": (text.get("compute_ms_per_text") or 0) * rate / instances["ner_text"]}
    part, value = max(((p, v) for p, v in busy.items() if v is not None and p != "ner_text instances"),
                      key=lambda item: item[1])
    if value < BUSY:
        part = "ner_text instances" if busy["ner_text instances"] >= BUSY else "clients"
    return {"busy": busy, "limit": part}


def _cpu_figures(before: dict[str, float], after: dict[str, float], load, texts: int) -> dict:
    """CPU time per text served (user and system, from /proc): the server's by part (tritonserver, each step's
    stubs) and in all, and the load generator's, with how busy its processes were (near 1: it is the limit)."""
    if not texts:
        return {}
    parts = {part: (after[part] - before.get(part, 0.0)) * 1000 / texts for part in after}
    return {"server_cpu_ms_per_text": sum(parts.values()), "server_cpu_ms_per_text_by_part": parts,
            "generator_cpu_ms_per_text": load.generator_cpu_s * 1000 / texts,
            "generator_processes": load.processes, "generator_busy": load.generator_busy}


def serve(plan: Plan, traced: Traced, work: Path, deadline: float, log: Callable[[str], None],
          pack: Path | None = None, grid: list[dict] | None = None) -> dict:
    """Step 4: serve the TorchScript repository and load it at each concurrency and texts per request."""
    served = _served_repository(plan, traced, work, pack, log)
    if served is None:
        return {"status": SKIPPED_NO_TRITON, "rows": []}
    from triton_ner.core import names
    from triton_ner.export import corpus
    from triton_ner.loadtest.http_load import model_instances, model_statistics, run_load, step_figures
    from triton_ner.server import TritonServer, free_ports
    from triton_ner.server.processes import tree_cpu_seconds

    config_name = variants.CUDA.config_name if plan.device.startswith("cuda") else None
    precision = plan.served.precision  # what configs/cuda.pbtxt and config.pbtxt run
    rng = random.Random(0)
    texts = [corpus.sentence(rng).text for _ in range(SERVED_TEXTS)]
    tokens = int(np.median([len(traced.tokenizer(text)["input_ids"]) for text in texts]))
    rows: list[dict] = []
    memory_before = _device_memory_used(plan.device)
    started = time.monotonic()
    with TritonServer(served.repository, free_ports(), config_name=config_name, runtime=served.runtime,
                      steps_python=served.steps_python) as server:
        ready_s = time.monotonic() - started
        memory = _device_memory_used(plan.device)
        memory = None if memory is None else memory - memory_before
        instances = {name: model_instances(server.http_url, name) for name in (names.TEXT_STEP, names.MODEL)}
        log(f"Triton ready ({config_name or 'config'}.pbtxt) in {ready_s:.1f} s; instances {instances}"
            + ("" if memory is None else f"; {memory:.2f} GiB of GPU memory taken by the server"))
        run_load(server.http_url, texts, 8, 8, 1.0, processes=1)  # warmup: every step has run a few batches
        for concurrency in plan.concurrency:
            for per_request in plan.texts_per_request:
                row: dict = {"concurrency": concurrency, "texts_per_request": per_request}
                if time.monotonic() > deadline:
                    rows.append(row | {"error": SKIPPED_BUDGET})
                    continue
                before, cpu_before = model_statistics(server.http_url), tree_cpu_seconds(server.process.pid)
                load = run_load(server.http_url, texts, concurrency, per_request, plan.served_seconds)
                after, cpu_after = model_statistics(server.http_url), tree_cpu_seconds(server.process.pid)
                served_texts = load.requests * per_request
                steps = step_figures(before, after, served_texts)
                batch = steps[names.MODEL]["average_batch"]
                row |= {"seconds": load.seconds, "requests": load.requests, "texts_per_s": load.texts_per_s,
                        "p50_ms": load.percentile(50), "p99_ms": load.percentile(99),
                        "model_average_batch": batch, "errors": len(load.errors),
                        "steps": {m: steps[m] for m in (names.TEXT_STEP, names.MODEL)},
                        **_cpu_figures(cpu_before, cpu_after, load, served_texts)}
                if served_texts:
                    # The text step's time less its wait at ner_model (queued or running): its own work.
                    row["text_step_own_ms_per_text"] = (steps[names.TEXT_STEP]["compute_ms_per_text"]
                                                        - steps[names.MODEL]["request_ms_per_text"])
                if served_texts:
                    row |= _limit(row, instances)
                reference = _model_alone_reference(grid or [], plan.served, batch, tokens)
                if reference:
                    row |= {"model_alone": f"{plan.served.name} batch {reference['batch']} x {reference['length']} "
                                           "tokens",
                            "model_alone_sequences_per_s": reference["sequences_per_s"],
                            "ratio_to_model_alone": load.texts_per_s / reference["sequences_per_s"]}
                if load.errors:
                    row["error"] = f"{len(load.errors)} failed requests, first: {load.errors[0]}"
                rows.append(row)
                log(f"served c={concurrency} x {per_request}: {load.texts_per_s:,.0f} texts/s, p50 "
                    f"{row['p50_ms'] or 0:.1f} ms, ner_model average batch {batch or 0:.1f}")
    model_step = f"TorchScript {plan.served.name} on {'cuda' if config_name else 'cpu'}"
    return {"status": "ok", "config_name": config_name or "config", "model_step": model_step,
            "triton": "serving pack" if served.runtime else "nvidia-pytriton wheel", "median_tokens": tokens,
            "ready_s": ready_s, "gpu_memory_gib": memory, "instances": instances, "rows": rows}


def _device_memory_used(device: str) -> float | None:
    """GiB in use on the GPU by every process (None on CPU): the served model step's share is the difference
    while the server runs."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**30


def run_check(dry_run: bool | None = None, budget_s: float = DEFAULT_BUDGET_S,
              log: Callable[[str], None] = print, pack: Path | None = None) -> dict:
    """Run every step and return the results (what ``gpu_check.json`` holds); ``results["ok"]`` is the verdict.

    Args:
        dry_run: ``True``: the CPU dry run; ``False``: the full run (on CPU too, slowly); ``None``: full when
            ``torch.cuda.is_available()``.
        budget_s: Seconds after which the remaining grid cells and served runs are skipped (recorded as such).
        log: Where progress lines go.
        pack: A serving pack (``make gpu-check-pack``) to serve through; by default the installed local Triton.
    """
    import torch

    started = time.monotonic()
    if dry_run is None:
        dry_run = not torch.cuda.is_available()
    plan = DRY_RUN if dry_run else FULL
    if not plan.dry_run and not torch.cuda.is_available():
        plan = replace(plan, device="cpu")

    def say(message: str) -> None:
        log(f"[{time.monotonic() - started:6.1f} s] {message}")

    results: dict = {"dry_run": plan.dry_run, "plan": asdict(plan), "environment": _environment(plan.device),
                     "budget_s": budget_s, "fp32_tolerance": FP32_TOLERANCE, "min_agreement": MIN_AGREEMENT}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        work = Path(folder)
        say(f"{'dry run on CPU' if plan.dry_run else 'full run'}: {plan.model} model on {plan.device}")
        try:
            traced = trace(plan, work)
        except Exception as error:  # noqa: BLE001: nothing else can run, the report says why
            traceback.print_exc()
            results |= {"ok": False, "failures": [f"trace: {_one_line(error)}"],
                        "seconds": time.monotonic() - started}
            return results
        results["model"] = {"name": plan.model, "checkpoint": str(traced.checkpoint),
                            "parameters": sum(p.numel() for p in traced.model.parameters()),
                            "vocab_size": traced.model.config.vocab_size,
                            "torchscript_mb": traced.torchscript.stat().st_size / 2**20,
                            "trace_seconds": time.monotonic() - started}
        say(f"traced {traced.checkpoint.name} ({results['model']['torchscript_mb']:.0f} MB)")
        proofs, figures = prove(plan, traced, say)
        results["proofs"] = [p.summary() for p in proofs]
        results["precisions"] = figures
        failures += [f"proof: {p.name}: {p.error or p.measured}" for p in proofs if not p.ok]
        grid, loads = measure(plan, traced, started + GRID_SHARE * budget_s, say)
        results["model_alone"], results["runners"] = grid, loads
        failures += [f"model alone {r['runner']} {r.get('batch', '')}x{r.get('length', '')}: {r['error']}"
                     for r in grid + loads if r.get("error") and r["error"] != SKIPPED_BUDGET]
        try:
            results["served"] = serve(plan, traced, work, started + budget_s, say, pack, grid)
        except Exception as error:  # noqa: BLE001: a failed served step is reported, the figures above stay
            traceback.print_exc()
            results["served"] = {"status": f"error: {_one_line(error)}", "rows": []}
            failures.append(f"served: {_one_line(error)}")
        if results["served"]["status"] != "ok":
            say(f"served: {results['served']['status']}")
        failures += [f"served c={r['concurrency']} x {r['texts_per_request']}: {r['error']}"
                     for r in results["served"]["rows"] if r.get("error") and r["error"] != SKIPPED_BUDGET]
    results |= {"ok": not failures, "failures": failures, "seconds": time.monotonic() - started}
    return results


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or isinstance(value, int):
        return "-" if value is None else str(value)
    return f"{value:.{digits}e}" if 0 < abs(value) < 0.01 else f"{value:,.{digits}f}"


def _limit_text(row: dict) -> str:
    """The row's limit with the busy shares of the text step's own work and the model step's executes."""
    busy = row.get("busy")
    if not busy:
        return "-"
    shares = ", ".join(f"{part} {share:.0%}" for part, share in busy.items() if share is not None)
    return f"{row['limit']} ({shares})"


def markdown(results: dict) -> str:
    """The results as Markdown tables: proofs, model alone, served."""
    env = results["environment"]
    where = f"{'dry run on CPU' if results['dry_run'] else env.get('gpu', 'CPU')} ({results['plan']['model']} model)"
    verdict = "every proof holds" if results["ok"] else "FAILED"
    title = (f"gpu-check, {where}, torch {env['torch']}, transformers {env['transformers']}: "
             f"{results['seconds']:.0f} s, {verdict}")
    lines = [title, "", "| proof | measured | bound | holds |", "|---|---|---|---|"]
    for p in results.get("proofs", []):
        measured = p["error"] or _number(p["measured"], 4)
        lines.append(f"| {p['name']} | {measured} | {'≥' if p['at_least'] else '≤'} {p['bound']:g} | "
                     f"{'yes' if p['ok'] else 'NO'} |")
    lines += ["", "| runner | load s (capture included) | GPU memory GiB |", "|---|---|---|"]
    for r in results.get("runners", []):
        lines.append(f"| {r['runner']} | {r.get('error') or _number(r['load_s'], 1)} | "
                     f"{_number(r.get('gpu_memory_gib'), 2)} |")
    lines += ["", "| model alone | batch | tokens | latency ms | sequences/s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in results.get("model_alone", []):
        if "latency_ms" in r:
            lines.append(f"| {r['runner']} | {r['batch']} | {r['length']} | {r['latency_ms']:.2f} | "
                         f"{r['sequences_per_s']:,.0f} | {r['tokens_per_s']:,.0f} |")
        else:
            lines.append(f"| {r['runner']} | {r.get('batch', '-')} | {r.get('length', '-')} | {r['error']} | | |")
    served = results.get("served", {"status": "not run", "rows": []})
    if served["rows"]:
        step = f"{served['config_name']}.pbtxt: {served['model_step']}, {served['triton']}"
        memory = served.get("gpu_memory_gib")
        lines += ["", f"served ({step}); ready in {_number(served.get('ready_s'), 1)} s; instances "
                      f"{served.get('instances')}" + ("" if memory is None else f"; GPU memory {memory:.2f} GiB"),
                  "compute from Triton's statistics, CPU from /proc, per text served; limit: the part busy more "
                  f"than {BUSY:.0%} of its time (clients: none is)", "",
                  "| clients | texts/request | texts/s | p50 ms | p99 ms | ner_text ms/text | ner_text ms/execute | "
                  "requests per ner_text execute | text step's own ms/text | ner_model ms/text | ner_model ms/execute "
                  "| ner_model average batch | server CPU ms/text | load generator CPU ms/text (busy) | model alone | "
                  "× model alone | limit |", "|" + "---|" * 17]
        for r in served["rows"]:
            if "texts_per_s" not in r:
                lines.append(f"| {r['concurrency']} | {r['texts_per_request']} | {r['error']} |" + " |" * 14)
                continue
            text, model = (r.get("steps", {}).get(name, {}) for name in ("ner_text", "ner_model"))
            alone = (f"{r['model_alone']}: {r['model_alone_sequences_per_s']:,.0f}/s",
                     f"{r['ratio_to_model_alone']:.2f}") if "model_alone" in r else ("-", "-")
            generator = (f"{_number(r.get('generator_cpu_ms_per_text'), 3)} ({r['generator_busy']:.0%} of "
                         f"{r['generator_processes']})") if "generator_busy" in r else "-"
            lines.append(" | ".join([
                f"| {r['concurrency']}", str(r["texts_per_request"]), f"{r['texts_per_s']:,.1f}",
                _number(r["p50_ms"], 1), _number(r["p99_ms"], 1), _number(text.get("compute_ms_per_text"), 3),
                _number(text.get("compute_ms_per_execute"), 2), _number(text.get("average_batch"), 1),
                _number(r.get("text_step_own_ms_per_text"), 3), _number(model.get("compute_ms_per_text"), 3),
                _number(model.get("compute_ms_per_execute"), 2), _number(r["model_average_batch"], 1),
                _number(r.get("server_cpu_ms_per_text"), 3), generator, alone[0], alone[1],
                f"{_limit_text(r)} |"]))
    else:
        lines += ["", f"served: {served['status']}"]
    if results["failures"]:
        lines += ["", "failures:", *(f"- {f}" for f in results["failures"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: run the check, write ``gpu_check.json``, print the tables; the exit code (0, 1 or 2)."""
    parser = argparse.ArgumentParser(prog="python -m triton_ner.loadtest.gpu_check", description=(
        "Prove the model's GPU logits against CPU FP32, then measure the model alone and served."))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Folder for gpu_check.json.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", dest="dry_run", action="store_true", default=None,
                      help="CPU dry run (fixture model, small grid); default: the full run when a CUDA GPU is "
                           "visible.")
    mode.add_argument("--full", dest="dry_run", action="store_false", help="The full run, on CPU too.")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="Seconds after which the remaining measurements are skipped (recorded as skipped).")
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK,
                        help=f"Serving pack to serve through when it exists (default: {DEFAULT_PACK}); else the "
                             "installed local Triton.")
    args = parser.parse_args(argv)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        cli.error("gpu-check", f"cannot write to {args.output}: {error.strerror}")
        return 2
    results = run_check(args.dry_run, args.budget_s, log=lambda m: cli.say("gpu-check", m), pack=args.pack)
    (args.output / "gpu_check.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(markdown(results))
    print(f"gpu-check: wrote {args.output / 'gpu_check.json'}", file=sys.stderr)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

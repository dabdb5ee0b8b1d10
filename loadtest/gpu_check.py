"""``make gpu-check``: one prepared run on a lent NVIDIA GPU, proving the GPU numerics and measuring them.

Steps, in one process, with a time budget (7 minutes by default, for an 8-minute slot on one H200):

1. the full-size benchmark model (DistilBERT with random weights, built in seconds) traced to TorchScript with
   the exporter (``export.convert.export_torchscript``, as it is in the tree);
2. proofs: no device constant in the traced file; the project's runner on ``cuda`` in FP32 within 1e-3 of
   PyTorch on CPU (proof texts up to 512 tokens) and of the CPU runner (agreement corpus); FP16 and BF16 on
   ``cuda`` finding the same entities as CPU FP32 on the exporter's agreement corpus (:data:`MIN_AGREEMENT`);
3. the model alone (the project's runner, host arrays in and out) at batch 1-256 × 16-512 tokens per precision:
   median latency, sequences/s, tokens/s, CUDA-synchronised, after warmup;
4. the served ensemble through the local Triton at concurrency 1-64, one text per request, when nvidia-pytriton
   and tritonclient are installed: the TorchScript export, ``configs/cuda.pbtxt`` (Python-backend runner in FP16
   on the GPU) when there is a GPU and the export wrote it, else ``config.pbtxt`` (on CPU). Without those
   packages the step is recorded as skipped, which is not a failure.

It writes ``results/gpu-check/gpu_check.json``, prints Markdown tables and exits 1 when a proof fails or a step
raises. Without a GPU (or with ``--dry-run``) the same steps run on CPU with the fixture model and a small grid,
in well under a minute: ``tests/integration/test_gpu_check.py`` runs that dry run in the test suite.

On a lent machine: nothing needs to travel beyond the git tree. Steps 1-3 import torch, transformers,
tokenizers and numpy (all on the machine; typer too, as transformers 5.17 requires it) and the project's
``export``/``ner``/``loadtest`` packages from the tree, never tritonclient, grpc, protobuf or onnx; the models are
built there (the 260 MB benchmark weights are never committed or carried). From the repository root::

    make gpu-check                       # .venv/bin/python if there is one, else python3 (GPU_PYTHON=...)
    python -m triton_ner.loadtest.gpu_check         # the same; --help for the options

and keep ``results/gpu-check/gpu_check.json`` (the printed tables hold the same figures). Where only one folder
comes back from the machine, write there: ``make gpu-check GPU_CHECK_ARGS="--output $OUT"``. Rehearsed on CPU
with the lent machine's libraries (transformers 5.17, huggingface_hub 1.x, no Triton packages): the dry run and
the full-size model's proofs pass; it has not run on a GPU yet.
"""

from __future__ import annotations

import importlib.util
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "fp16", "bf16")
FP32_TOLERANCE = 1e-3
# Entity agreement with CPU FP32 on the agreement corpus. The benchmark model has random weights, so many tokens
# are near-ties between labels that rounding flips; on CPU (torch 2.13) FP16 agreed 99.8% and BF16 (8 bits of
# mantissa) 98.8% over 4,180 entities. The bounds leave room for the GPU's other summation order and still
# catch a broken precision (overflow, NaN, a wrong mask), which agrees on next to nothing.
MIN_AGREEMENT = {"fp16": 0.98, "bf16": 0.95}
SKIPPED_NO_TRITON = "skipped: no local tritonserver (the nvidia-pytriton wheel is not installed)"
SKIPPED_BUDGET = "skipped: time budget spent"
DEFAULT_OUTPUT = Path("results/gpu-check")
DEFAULT_BUDGET_S = 420.0
GRID_SHARE = 0.7  # the model-alone grid stops at this share of the budget, leaving the rest to the served step


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
    served_texts: int
    concurrency: tuple[int, ...]


FULL = Plan(False, "cuda", "benchmark", (1, 8, 32, 128, 256), (16, 64, 128, 512), warmup=3, repeats=10,
            served_texts=512, concurrency=(1, 8, 32, 64))
DRY_RUN = Plan(True, "cpu", "fixture", (1, 8), (16, 64), warmup=2, repeats=3, served_texts=32,
               concurrency=(1, 8))


@dataclass
class Proof:
    """One proof: a figure, its bound, and whether it must be at least (agreement) or at most (Δ) the bound."""

    key: str  # stable: device_constants, fp32_logits_eager, fp32_logits_corpus, fp16_agreement, bf16_agreement
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
    """Step 1's result: the checkpoint, its eager PyTorch model and tokenizer, and the traced file."""

    checkpoint: Path
    model: object
    tokenizer: object
    torchscript: Path


def trace(plan: Plan, work: Path) -> Traced:
    """Step 1: build (or reuse) the plan's model and trace it with the project's exporter."""
    from transformers import AutoTokenizer

    from triton_ner.export import convert
    from triton_ner.export.fixture import benchmark_model, fixture_model

    checkpoint = benchmark_model() if plan.model == "benchmark" else fixture_model()
    model = convert.load_model(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return Traced(checkpoint, model, tokenizer, convert.export_torchscript(model, tokenizer, work / "model.pt"))


def prove(plan: Plan, traced: Traced, log: Callable[[str], None]) -> tuple[list[Proof], list[dict]]:
    """Step 2: every precision on the plan's device against CPU FP32; the proofs and each precision's figures."""
    from triton_ner.export import convert
    from triton_ner.core.aggregation import aggregate_texts
    from triton_ner.core.batching import run_in_groups
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.runtime import load_runner
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
    proofs = [Proof("device_constants", "device constants in the traced file", len(constants), 0, False,
                    ", ".join(constants))]
    reference_logits, reference = run_corpus(load_runner(traced.torchscript, device="cpu"))
    log(f"reference: CPU FP32 runner, {len(texts)} texts, {len(batch.input_ids)} windows, {len(reference)} entities")
    figures: list[dict] = []
    for precision in PRECISIONS:
        where = f"{plan.device} {precision}"
        try:
            run = load_runner(traced.torchscript, device=plan.device, precision=precision)
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


def measure(plan: Plan, traced: Traced, deadline: float, log: Callable[[str], None]) -> list[dict]:
    """Step 3: the project's runner alone over the plan's grid of batch sizes and lengths, per precision."""
    import torch

    from triton_ner.core.runtime import load_runner

    sync = torch.cuda.synchronize if plan.device.startswith("cuda") else (lambda: None)
    vocab_size = traced.model.config.vocab_size
    rows: list[dict] = []
    for precision in PRECISIONS:
        try:
            run = load_runner(traced.torchscript, device=plan.device, precision=precision)
        except Exception as error:  # noqa: BLE001: recorded, the other precisions still run
            rows.append({"precision": precision, "error": _one_line(error)})
            continue
        rng = np.random.default_rng(0)
        for batch in plan.batches:
            for length in plan.lengths:
                row = {"precision": precision, "batch": batch, "length": length}
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
            log(f"model alone {precision} batch {batch}: " + ", ".join(
                f"{r['length']} tokens {r['latency_ms']:.2f} ms" if "latency_ms" in r else f"{r['length']} tokens -"
                for r in rows if r.get("batch") == batch and r["precision"] == precision))
        del run
        _release(plan.device)
    return rows


def served_available() -> bool:
    """Whether the local Triton (nvidia-pytriton) and the gRPC client (tritonclient) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("pytriton", "tritonclient"))


def serve(plan: Plan, traced: Traced, work: Path, deadline: float, log: Callable[[str], None]) -> dict:
    """Step 4: export a repository, serve it with the local Triton, one text per request at each concurrency."""
    if not served_available():
        return {"status": SKIPPED_NO_TRITON, "rows": []}
    from triton_ner.export.configs import Format, Precision, Target
    from triton_ner.export.repository import ExportPlan, build
    from triton_ner.export.source import Checkpoint
    from triton_ner.loadtest.bench import served_run
    from triton_ner.loadtest.texts import benchmark_corpus
    from triton_ner.core import names
    from triton_ner.server import TritonServer, free_ports

    repository = work / "model_repository"
    # TorchScript only: config.pbtxt runs it on CPU, configs/cuda.pbtxt in FP16 on the GPU (proven at export).
    export_plan = ExportPlan(frozenset({Format.TORCHSCRIPT}), frozenset({Precision.FP32, Precision.FP16}),
                             Target.BOTH, min_agreement=MIN_AGREEMENT["fp16"])
    build(Checkpoint(traced.checkpoint, plan.model), repository, export_plan, log=lambda m: log(f"export {m}"))
    cuda_variant = (repository / names.MODEL / "configs" / "cuda.pbtxt").exists()
    config_name = "cuda" if plan.device.startswith("cuda") and cuda_variant else None
    texts = benchmark_corpus(plan.served_texts, seed=0)
    rows: list[dict] = []
    with TritonServer(repository, free_ports(), config_name=config_name) as server:
        log(f"Triton ready ({config_name or 'config'}.pbtxt)")
        served_run(server.grpc_url, texts[:64], 8)  # warmup: every model step has run a few batches
        for concurrency in plan.concurrency:
            if time.monotonic() > deadline:
                rows.append({"concurrency": concurrency, "error": SKIPPED_BUDGET})
                continue
            seconds, latencies = served_run(server.grpc_url, texts, concurrency)
            p50, p95, p99 = np.percentile(latencies, [50, 95, 99]).tolist()
            rows.append({"concurrency": concurrency, "texts": len(texts), "seconds": seconds,
                         "texts_per_s": len(texts) / seconds, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99})
            log(f"served c={concurrency}: {len(texts) / seconds:.1f} texts/s, p50 {p50:.1f} ms")
    model_step = "TorchScript fp16 on cuda" if config_name else "TorchScript fp32 on cpu"
    return {"status": "ok", "config_name": config_name or "config", "model_step": model_step,
            "cuda_variant_exported": cuda_variant, "rows": rows}


def run_check(dry_run: bool | None = None, budget_s: float = DEFAULT_BUDGET_S,
              log: Callable[[str], None] = print) -> dict:
    """Run every step and return the results (what ``gpu_check.json`` holds); ``results["ok"]`` is the verdict.

    Args:
        dry_run: ``True``: the CPU dry run; ``False``: the full run (on CPU too, slowly); ``None``: full when
            ``torch.cuda.is_available()``.
        budget_s: Seconds after which the remaining grid cells and served runs are skipped (recorded as such).
        log: Where progress lines go.
    """
    import torch

    started = time.monotonic()
    if dry_run is None:
        dry_run = not torch.cuda.is_available()
    plan = DRY_RUN if dry_run else FULL
    if not plan.dry_run and not torch.cuda.is_available():
        plan = Plan(**asdict(plan) | {"device": "cpu"})

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
        grid = measure(plan, traced, started + GRID_SHARE * budget_s, say)
        results["model_alone"] = grid
        failures += [f"model alone {r['precision']} {r.get('batch', '')}x{r.get('length', '')}: {r['error']}"
                     for r in grid if r.get("error") and r["error"] != SKIPPED_BUDGET]
        try:
            results["served"] = serve(plan, traced, work, started + budget_s, say)
        except Exception as error:  # noqa: BLE001: a failed served step is reported, the figures above stay
            traceback.print_exc()
            results["served"] = {"status": f"error: {_one_line(error)}", "rows": []}
            failures.append(f"served: {_one_line(error)}")
        if results["served"]["status"] != "ok":
            say(f"served: {results['served']['status']}")
    results |= {"ok": not failures, "failures": failures, "seconds": time.monotonic() - started}
    return results


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or isinstance(value, int):
        return "-" if value is None else str(value)
    return f"{value:.{digits}e}" if 0 < abs(value) < 0.01 else f"{value:,.{digits}f}"


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
    lines += ["", "| model alone | batch | tokens | latency ms | sequences/s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in results.get("model_alone", []):
        if "latency_ms" in r:
            lines.append(f"| {r['precision']} | {r['batch']} | {r['length']} | {r['latency_ms']:.2f} | "
                         f"{r['sequences_per_s']:,.0f} | {r['tokens_per_s']:,.0f} |")
        else:
            lines.append(f"| {r['precision']} | {r.get('batch', '-')} | {r.get('length', '-')} | {r['error']} | | |")
    served = results.get("served", {"status": "not run", "rows": []})
    if served["rows"]:
        step = f"{served['config_name']}.pbtxt: {served['model_step']}"
        lines += ["", f"| served ({step}) concurrency | texts/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
        for r in served["rows"]:
            if "texts_per_s" in r:
                lines.append(f"| {r['concurrency']} | {r['texts_per_s']:.1f} | {r['p50_ms']:.1f} | "
                             f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} |")
            else:
                lines.append(f"| {r['concurrency']} | {r['error']} | | | |")
    else:
        lines += ["", f"served: {served['status']}"]
    if results["failures"]:
        lines += ["", "failures:", *(f"- {f}" for f in results["failures"])]
    return "\n".join(lines)


def main(output: Path = DEFAULT_OUTPUT, dry_run: bool | None = None, budget_s: float = DEFAULT_BUDGET_S) -> int:
    """Run the check, write ``gpu_check.json`` into ``output``, print the tables; the exit code (0 or 1)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"gpu-check: error: cannot write to {output}: {error.strerror}", file=sys.stderr)
        return 2
    results = run_check(dry_run, budget_s, log=lambda m: print(f"gpu-check: {m}", file=sys.stderr, flush=True))
    (output / "gpu_check.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(markdown(results))
    print(f"gpu-check: wrote {output / 'gpu_check.json'}", file=sys.stderr)
    return 0 if results["ok"] else 1


# transformers 5.17 requires typer (its METADATA has an unconditional `Requires-Dist: typer`), so a GPU machine
# where transformers was installed with pip has it; one assembled with --no-deps or from another channel may not,
# and a missing CLI library must not cost the one run on a lent GPU: argparse then, with the same options.
try:
    import typer
except ImportError:  # pragma: no cover: exercised only on such a machine
    typer = None

if typer is not None:
    from typing import Annotated

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def cli(
        output: Annotated[Path, typer.Option(help="Folder for gpu_check.json.")] = DEFAULT_OUTPUT,
        dry_run: Annotated[bool | None, typer.Option(
            "--dry-run/--full", help="CPU dry run (fixture model, small grid) or the full run; "
                                     "default: full when a CUDA GPU is visible.", show_default=False)] = None,
        budget_s: Annotated[float, typer.Option(min=10, help="Seconds after which the remaining measurements "
                                                             "are skipped (recorded as skipped).")]
        = DEFAULT_BUDGET_S,
    ) -> None:
        """Prove the model's GPU logits against CPU FP32, then measure the model alone and served."""
        raise typer.Exit(main(output, dry_run, budget_s))


def _argparse_cli(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m triton_ner.loadtest.gpu_check",
                                     description="Prove the model's GPU logits against CPU FP32, then measure "
                                                 "the model alone and served.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Folder for gpu_check.json.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", dest="dry_run", action="store_true", default=None, help="CPU dry run.")
    mode.add_argument("--full", dest="dry_run", action="store_false", help="The full run.")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="Time budget in seconds.")
    args = parser.parse_args(argv)
    return main(args.output, args.dry_run, args.budget_s)


if __name__ == "__main__":
    if typer is not None:
        app()
    else:
        sys.exit(_argparse_cli())

"""``make gpu-check``: a one-shot validation and benchmark on a machine with an NVIDIA GPU and PyTorch.

Steps, in one process, with a time budget (5 minutes by default; the whole check ends within 6):

1. the full-size benchmark model (DistilBERT with random weights, built in seconds) traced to TorchScript with
   the exporter (``export.convert.export_torchscript``);
2. proofs: no device constant in the traced file; the project's runner on ``cuda`` in FP32 within 1e-3 of
   PyTorch on CPU (proof texts up to 512 tokens) and of the CPU runner (agreement corpus); FP16 and BF16 on
   ``cuda`` finding the same entities as CPU FP32 on the exporter's agreement corpus (:mod:`loadtest.gpu_proofs`);
3. the model alone (host arrays in and out) at batch 1-256 × 16-512 tokens for each runner of the plan (the served
   one, then each of its means taken away; :mod:`loadtest.gpu_plan`): median latency, sequences/s, tokens/s,
   CUDA-synchronised, after warmup; each runner's load time and GPU memory;
4. the served ensemble, TorchScript export, ``configs/cuda.pbtxt`` (the Python-backend runner in FP16 on the GPU;
   ``config.pbtxt`` on CPU), at concurrency 1-256 with 1 and 8 short texts per request over Triton's HTTP/JSON
   API (:mod:`loadtest.gpu_served`): texts/s, latency, each step's figures and what limits each row, against the
   model alone. Triton comes from the serving pack (``make gpu-check-pack``, :mod:`loadtest.gpu_pack`) when
   there is one, else from the installed nvidia-pytriton wheel; with neither, the step is recorded as skipped,
   which is not a failure.

It writes ``results/gpu-check/gpu_check.json``, prints Markdown tables and exits 1 when a proof fails or a step
raises. Without a GPU (or with ``--dry-run``) the same steps run on CPU with the fixture model and a small grid,
in about a minute: ``tests/integration/test_gpu_check.py`` runs that dry run, through a serving pack too.

On the GPU machine steps 1-4 need torch, transformers, tokenizers and numpy and the project's source tree, never
tritonclient, grpc, protobuf or onnx; the models are built there (the 260 MB benchmark weights never travel).
Where Triton is not installed, make the pack where it is and copy it along (``build/gpu-check/``). From the
repository root::

    make gpu-check-pack                  # where the local Triton is installed (make setup); about 40 MB
    make gpu-check                       # .venv/bin/python if there is one, else python3 (PYTHON=...)
    python -m triton_ner_loadtest.gpu_check --help
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from triton_ner import cli
from triton_ner.core.cuda_graphs import served_shapes
from triton_ner_loadtest.gpu_pack import DEFAULT_PACK
from triton_ner_loadtest.gpu_plan import (
    DRY_RUN,
    FULL,
    GRID_SHARE,
    SKIPPED_BUDGET,
    SKIPPED_NO_TRITON,
    Plan,
    Runner,
    Traced,
    one_line,
    release,
)
from triton_ner_loadtest.gpu_proofs import FP32_TOLERANCE, MIN_AGREEMENT, PRECISIONS, Proof, prove
from triton_ner_loadtest.gpu_report import markdown
from triton_ner_loadtest.gpu_served import BUSY, serve

__all__ = ["BUSY", "PRECISIONS", "SKIPPED_NO_TRITON", "Proof", "Runner", "main", "markdown", "run_check"]

DEFAULT_OUTPUT = Path("results/gpu-check")
DEFAULT_BUDGET_S = 300.0


def _environment(device: str) -> dict:
    import tokenizers
    import torch
    import transformers

    env: dict[str, str | int | float | None] = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
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


def time_run(run: Callable[[np.ndarray, np.ndarray], object], input_ids: np.ndarray, attention_mask: np.ndarray,
             sync: Callable[[], None], warmup: int, repeats: int, max_seconds: float = 5.0) -> list[float]:
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
        except Exception as error:  # noqa: BLE001 - recorded, the other runners still run
            loads.append({"runner": runner.name, "error": one_line(error)})
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
                except Exception as error:  # noqa: BLE001 - out of memory, say; the grid goes on
                    rows.append(row | {"error": one_line(error)})
                    release(plan.device)
                    continue
                median = statistics.median(times)
                rows.append(row | {"runs": len(times), "latency_ms": median * 1000, "min_ms": min(times) * 1000,
                                   "sequences_per_s": batch / median, "tokens_per_s": batch * length / median})
            log(f"model alone {runner.name} batch {batch}: " + ", ".join(
                f"{r['length']} tokens {r['latency_ms']:.2f} ms" if "latency_ms" in r else f"{r['length']} tokens -"
                for r in rows if r.get("batch") == batch and r["runner"] == runner.name))
        del run
        release(plan.device)
    return rows, loads


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
        except Exception as error:  # noqa: BLE001 - nothing else can run, the report says why
            traceback.print_exc()
            results |= {"ok": False, "failures": [f"trace: {one_line(error)}"],
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
        except Exception as error:  # noqa: BLE001 - a failed served step is reported, the figures above stay
            traceback.print_exc()
            results["served"] = {"status": f"error: {one_line(error)}", "rows": []}
            failures.append(f"served: {one_line(error)}")
        if results["served"]["status"] != "ok":
            say(f"served: {results['served']['status']}")
        failures += [f"served c={r['concurrency']} x {r['texts_per_request']}: {r['error']}"
                     for r in results["served"]["rows"] + results["served"].get("null_model_rows", [])
                     if r.get("error") and r["error"] != SKIPPED_BUDGET]
    results |= {"ok": not failures, "failures": failures, "seconds": time.monotonic() - started}
    return results


def main(argv: list[str] | None = None) -> int:
    """The command line: run the check, write ``gpu_check.json``, print the tables; the exit code (0, 1 or 2)."""
    parser = argparse.ArgumentParser(prog="python -m triton_ner_loadtest.gpu_check", description=(
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

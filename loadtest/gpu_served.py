"""gpu-check's step 4: the ensemble served with the cuda variant (``config.pbtxt`` on CPU) and loaded over HTTP,
with each step's figures, the server's CPU and GPU memory, and what limits each row."""

from __future__ import annotations

import importlib.util
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from triton_ner.core import variants
from triton_ner_loadtest.gpu_plan import SERVED_TEXTS, SKIPPED_BUDGET, SKIPPED_NO_TRITON, Plan, Runner, Traced

if TYPE_CHECKING:
    from triton_ner.server.launcher import TritonServer
    from triton_ner_loadtest.http_load import LoadResult


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



def _project_path() -> Path:
    """The folder this process imported ``triton_ner`` from (a checkout, ``make checkout-tree``'s links,
    site-packages), for the steps' path."""
    import triton_ner

    return Path(triton_ner.__file__).parents[1]



def _served_repository(plan: Plan, traced: Traced, work: Path, pack: Path | None,
                       log: Callable[[str], None]) -> Served | None:
    """What to serve, or None when neither a pack nor the local Triton is there. Through a pack, the steps get an
    environment of their own: this machine's packages behind the pack's numpy (below 2), so that a machine whose
    Python has numpy 2 serves as it comes."""
    from triton_ner.server import environment
    from triton_ner_loadtest import gpu_pack

    if pack is not None and pack.is_file():
        unpacked = gpu_pack.unpack(pack, work / "pack", plan.model, traced.torchscript)
        started = time.monotonic()
        python = environment.make(work / "steps-env", [unpacked.steps_packages], [_project_path()])
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
            "host cores": None if None in cpu else (
                sum(cpu) * rate / (os.cpu_count() or 1)),  # type: ignore[arg-type]  # `None in cpu` narrows nothing
            "ner_model executes": (model.get("compute_ms_per_text") or 0) * rate / instances["ner_model"],
            "ner_text own work": (row.get("text_step_own_ms_per_text") or 0) * rate / instances["ner_text"],
            "ner_text instances": (text.get("compute_ms_per_text") or 0) * rate / instances["ner_text"]}
    part, value = max(((p, v) for p, v in busy.items() if v is not None and p != "ner_text instances"),
                      key=lambda item: item[1])
    if value < BUSY:
        part = "ner_text instances" if busy["ner_text instances"] >= BUSY else "clients"
    return {"busy": busy, "limit": part}



def _cpu_figures(before: dict[str, float], after: dict[str, float], load: LoadResult, texts: int,
                 apart: bool) -> dict:
    """CPU time per text served (user and system, from /proc): the server's by part (tritonserver, each step's
    stubs) and in all; with the model step in processes of its own (``apart``), the server's outside it and the
    model step's; and the load generator's, with how busy its processes were (near 1: it is the limit)."""
    if not texts:
        return {}
    from triton_ner.core import names

    parts = {part: (after[part] - before.get(part, 0.0)) * 1000 / texts for part in after}
    model = parts.get(names.MODEL, 0.0)
    return {"server_cpu_ms_per_text": sum(parts.values()), "server_cpu_ms_per_text_by_part": parts,
            **({"outside_model_cpu_ms_per_text": sum(parts.values()) - model, "model_cpu_ms_per_text": model}
               if apart else {}),
            "generator_cpu_ms_per_text": load.generator_cpu_s * 1000 / texts,
            "generator_processes": load.processes, "generator_busy": load.generator_busy}



def serve(plan: Plan, traced: Traced, work: Path, deadline: float, log: Callable[[str], None],
          pack: Path | None = None, grid: list[dict] | None = None) -> dict:
    """Step 4: serve the TorchScript repository and load it at each concurrency and texts per request; then, for
    the serving path alone, the same repository with the null model step (no model) at the most clients."""
    served = _served_repository(plan, traced, work, pack, log)
    if served is None:
        return {"status": SKIPPED_NO_TRITON, "rows": []}
    from triton_ner.core import names
    from triton_ner.export import corpus
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer
    from triton_ner.server.processes import stub_processes
    from triton_ner_loadtest.ceiling import with_null_model_step
    from triton_ner_loadtest.http_load import model_instances

    config_name = variants.CUDA.config_name if plan.device.startswith("cuda") else None
    rng = random.Random(0)
    texts = [corpus.sentence(rng).text for _ in range(SERVED_TEXTS)]
    tokens = int(np.median([len(traced.tokenizer(text)["input_ids"]) for text in texts]))
    memory_before = _device_memory_used(plan.device)
    started = time.monotonic()
    with TritonServer(served.repository, free_ports(), config_name=config_name, runtime=served.runtime,
                      steps_python=served.steps_python) as server:
        ready_s = time.monotonic() - started
        memory = _device_memory_used(plan.device)
        memory = None if memory is None or memory_before is None else memory - memory_before
        instances = {name: model_instances(server.http_url, name) for name in (names.TEXT_STEP, names.MODEL)}
        # A model step in its own processes (the Python backend) can be told apart from tritonserver's CPU time.
        apart = names.MODEL in stub_processes(server.started.pid).values()
        log(f"Triton ready ({config_name or 'config'}.pbtxt) in {ready_s:.1f} s; instances {instances}"
            + ("" if memory is None else f"; {memory:.2f} GiB of GPU memory taken by the server"))
        loads = [(c, t) for c in plan.concurrency for t in plan.texts_per_request]
        rows = _load_rows(server, texts, loads, plan, deadline, instances, apart, log,
                          lambda batch: _model_alone_reference(grid or [], plan.served, batch, tokens))
    null_config = with_null_model_step(served.repository, config_name)
    with TritonServer(served.repository, free_ports(), config_name=null_config, runtime=served.runtime,
                      steps_python=served.steps_python) as server:
        loads = [(max(plan.concurrency), t) for t in plan.texts_per_request]
        null_rows = _load_rows(server, texts, loads, plan, deadline, instances, True, log, lambda batch: None)
    model_step = f"TorchScript {plan.served.name} on {'cuda' if config_name else 'cpu'}"
    return {"status": "ok", "config_name": config_name or "config", "model_step": model_step,
            "triton": "serving pack" if served.runtime else "nvidia-pytriton wheel", "median_tokens": tokens,
            "ready_s": ready_s, "gpu_memory_gib": memory, "instances": instances, "rows": rows,
            "null_model_rows": null_rows}


def _load_rows(server: TritonServer, texts: list[str], loads: list[tuple[int, int]], plan: Plan, deadline: float,
               instances: dict[str, int], apart: bool, log: Callable[[str], None],
               reference: Callable[[float | None], dict | None]) -> list[dict]:
    """One row per ``(clients, texts per request)`` of ``loads``: throughput, latency, each step's figures, the
    server's CPU (outside the model step too, when ``apart``), what limits it, and the model alone at its batch
    (``reference``)."""
    from triton_ner.core import names
    from triton_ner.server.processes import tree_cpu_seconds
    from triton_ner_loadtest.http_load import model_statistics, run_load, step_figures, text_step_own_ms_per_text

    run_load(server.http_url, texts, 8, 8, 1.0, processes=1)  # warmup: every step has run a few batches
    rows: list[dict] = []
    for concurrency, per_request in loads:
        row: dict = {"concurrency": concurrency, "texts_per_request": per_request}
        if time.monotonic() > deadline:
            rows.append(row | {"error": SKIPPED_BUDGET})
            continue
        before, cpu_before = model_statistics(server.http_url), tree_cpu_seconds(server.started.pid)
        load = run_load(server.http_url, texts, concurrency, per_request, plan.served_seconds)
        after, cpu_after = model_statistics(server.http_url), tree_cpu_seconds(server.started.pid)
        served_texts = load.requests * per_request
        steps = step_figures(before, after, served_texts)
        batch = steps[names.MODEL]["average_batch"]
        row |= {"seconds": load.seconds, "requests": load.requests, "texts_per_s": load.texts_per_s,
                "p50_ms": load.percentile(50), "p99_ms": load.percentile(99),
                "model_average_batch": batch, "errors": len(load.errors),
                "steps": {m: steps[m] for m in (names.TEXT_STEP, names.MODEL)},
                **_cpu_figures(cpu_before, cpu_after, load, served_texts, apart)}
        if served_texts:
            row["text_step_own_ms_per_text"] = text_step_own_ms_per_text(steps)
            row |= _limit(row, instances)
        alone = reference(batch)
        if alone:
            row |= {"model_alone": f"{plan.served.name} batch {alone['batch']} x {alone['length']} tokens",
                    "model_alone_sequences_per_s": alone["sequences_per_s"],
                    "ratio_to_model_alone": load.texts_per_s / alone["sequences_per_s"]}
        if load.errors:
            row["error"] = f"{len(load.errors)} failed requests, first: {load.errors[0]}"
        rows.append(row)
        log(f"served c={concurrency} x {per_request}: {load.texts_per_s:,.0f} texts/s, p50 "
            f"{row['p50_ms'] or 0:.1f} ms, ner_model average batch {batch or 0:.1f}")
    return rows


def _device_memory_used(device: str) -> float | None:
    """GiB in use on the GPU by every process (None on CPU): the served model step's share is the difference
    while the server runs."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**30

"""Closed-loop load over Triton's HTTP/JSON API with the standard library alone, and Triton's statistics.

For machines that have Python and nothing of Triton's client (``make gpu-check`` on a bare GPU machine): each of
``concurrency`` users sends one request, waits for its answer and sends the next, on a connection of its own;
the users are spread over a few processes, so that the load generator's own Python is not what is measured.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from triton_ner.core import names


def request_body(texts: list[str]) -> bytes:
    """The ensemble's request over HTTP: ``TEXT`` as a BYTES tensor of shape ``[len(texts)]``."""
    return json.dumps({"inputs": [{"name": names.TEXT, "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
                       "outputs": [{"name": names.ENTITIES}]}).encode()


def _users(address: str, bodies: list[bytes], users: int, start_at: float, seconds: float
           ) -> tuple[list, list, float]:
    """``users`` threads sending ``bodies`` in turn from ``start_at`` for ``seconds``: ((completion time, latency
    s) of each request, errors, CPU seconds this process spent meanwhile)."""
    host, port = address.rsplit(":", 1)
    path = f"/v2/models/{names.ENSEMBLE}/infer"
    latencies: list[tuple[float, float]] = []
    errors: list[str] = []

    def user(offset: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        time.sleep(max(0.0, start_at - time.time()))
        end = start_at + seconds
        turn = offset
        while time.time() < end:
            body = bodies[turn % len(bodies)]
            turn += users
            started = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=600)
                continue
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {answer[:200].decode(errors='replace')}")
                continue
            latencies.append((time.time(), time.perf_counter() - started))
        connection.close()

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.process_time() - cpu


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    texts_per_request: int
    seconds: float
    requests: int
    errors: list[str]
    latencies_ms: list[float]
    completions: list[tuple[float, float]]  # (time.time() at completion, latency ms) of each request
    processes: int  # of the load generator
    generator_cpu_s: float  # CPU time of the load generator's processes over the run

    @property
    def generator_busy(self) -> float:
        """The load generator's CPU time over what its processes could spend: near 1, it is what limits."""
        return self.generator_cpu_s / (self.processes * self.seconds)

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.texts_per_request / self.seconds

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None


def run_load(address: str, texts: list[str], concurrency: int, texts_per_request: int, seconds: float,
             processes: int | None = None) -> LoadResult:
    """``concurrency`` users for ``seconds``, each request ``texts_per_request`` of ``texts`` (in turn)."""
    processes = max(1, min(concurrency, processes or max(1, (os.cpu_count() or 2) // 4)))
    bodies = [request_body([texts[(i + j) % len(texts)] for j in range(texts_per_request)])
              for i in range(0, max(len(texts), texts_per_request), texts_per_request)]
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + 0.5 + 0.1 * processes  # every process has started its users by then
    jobs = [(address, bodies[i::processes] or bodies, share, start_at, seconds) for i, share in enumerate(shares)]
    if processes == 1:
        parts = [_users(*jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.starmap(_users, jobs)
    completions = sorted((at, latency * 1000) for part, _, _ in parts for at, latency in part)
    return LoadResult(concurrency, texts_per_request, seconds, len(completions),
                      [e for _, part, _ in parts for e in part], [ms for _, ms in completions], completions, processes,
                      sum(cpu for *_, cpu in parts))


def _get(address: str, path: str) -> dict:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def model_instances(address: str, model: str) -> int:
    """How many instances of ``model`` the server runs (its configuration's ``instance_group`` counts)."""
    groups = _get(address, f"/v2/models/{model}/config").get("instance_group", [])
    return sum(int(group.get("count", 1)) for group in groups) or 1


def model_statistics(address: str) -> dict[str, dict]:
    """Each model's counters from ``/v2/models/stats``: requests, executions, the compute ns of its executions
    (each once, however many requests it ran), and the ns its requests spent queued or in an execution."""
    stats = _get(address, "/v2/models/stats")
    found = {}
    for model in stats.get("model_stats", []):
        inference = model.get("inference_stats", {})
        batches = model.get("batch_stats") or []
        # A model without batching reports its executions in the request statistics only.
        executions = (sum(int(b.get("compute_infer", {}).get("ns", 0)) for b in batches) if batches
                      else int(inference.get("compute_infer", {}).get("ns", 0)))
        found[model["name"]] = {"inference_count": int(model.get("inference_count", 0)),
                                "execution_count": int(model.get("execution_count", 0)),
                                "execution_compute_ns": executions,
                                "request_ns": sum(int(inference.get(phase, {}).get("ns", 0)) for phase in
                                                  ("queue", "compute_input", "compute_infer", "compute_output"))}
    return found


def average_batch(before: dict[str, dict], after: dict[str, dict], model: str) -> float | None:
    """Requests per execution of ``model`` between two :func:`model_statistics`: the batch its scheduler formed."""
    executions = after[model]["execution_count"] - before[model]["execution_count"]
    return (after[model]["inference_count"] - before[model]["inference_count"]) / executions if executions else None


def step_figures(before: dict[str, dict], after: dict[str, dict], texts: int) -> dict[str, dict]:
    """Each model's figures between two :func:`model_statistics` over ``texts`` texts served: the compute of its
    executions per text and per execution, its average batch, and the time its requests spent queued or running
    per text (what a caller of the model waited)."""
    figures = {}
    for model in after:
        delta = {key: after[model][key] - before.get(model, {}).get(key, 0) for key in after[model]}
        executions = delta["execution_count"]
        compute_ms = delta["execution_compute_ns"] / 1e6
        figures[model] = {"executions": executions,
                          "average_batch": delta["inference_count"] / executions if executions else None,
                          "compute_ms_per_text": compute_ms / texts if texts else None,
                          "compute_ms_per_execute": compute_ms / executions if executions else None,
                          "request_ms_per_text": delta["request_ns"] / 1e6 / texts if texts else None}
    return figures


def text_step_own_ms_per_text(steps: dict[str, dict]) -> float | None:
    """The text step's own work per text (tokenization, aggregation) from :func:`step_figures`: its compute less
    the time its calls spent at the model step, queued or running; at least 0 (two wall clocks whose edges differ
    by a few microseconds a call: where the own work is as small, the difference can fall below it)."""
    text, model = steps[names.TEXT_STEP]["compute_ms_per_text"], steps[names.MODEL]["request_ms_per_text"]
    return None if text is None or model is None else max(0.0, text - model)

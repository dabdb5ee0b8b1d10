"""The serving path's own ceiling: the ensemble around a model that computes almost nothing (the fixture model).

What is left is the cost of gRPC, the ensemble and the two Python-backend text steps, and how many windows they
hand the model step at once: the figures that say whether the path keeps a GPU busy. Measured with asynchronous
gRPC clients (one process, ``tritonclient.grpc.aio``) for a fixed time per point; each step's compute time and
``ner_model``'s average batch come from Triton's own statistics (``/v2/models/stats``), taken before and after.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from triton_ner.core import names

CONCURRENCY = (1, 16, 64, 256)
TEXTS_PER_REQUEST = (1, 8)
STEPS = (names.TOKENIZER, names.MODEL, names.AGGREGATE)
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
    step_ms_per_text: dict[str, float]  # each step's compute time (all its executions) per text served
    model_average_batch: float  # windows per execution of ner_model
    text_average_batch: float  # requests per execution of the tokenizer

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.texts_per_request / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        data = asdict(self)
        del data["latencies_ms"]
        return data | {"texts_per_s": self.texts_per_s, "p50_ms": self.percentile(50), "p99_ms": self.percentile(99)}


def _totals(client_stats) -> dict[str, tuple[int, int, int]]:
    """Per model: (inference_count, execution_count, compute ns of all executions)."""
    totals = {}
    for stats in client_stats.model_stats:
        compute = sum(b.compute_infer.ns for b in stats.batch_stats)
        if not stats.batch_stats:  # a model without batching reports its executions here only
            compute = stats.inference_stats.compute_infer.ns
        totals[stats.name] = (stats.inference_count, stats.execution_count, compute)
    return totals


async def _load(url: str, concurrency: int, texts: list[str], seconds: float) -> tuple[int, float, list[float]]:
    import tritonclient.grpc.aio as grpcaio

    client = grpcaio.InferenceServerClient(url)
    data = np.array([t.encode() for t in texts], dtype=np.object_)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def user() -> None:
        while time.perf_counter() < stop:
            tensor = grpcaio.InferInput(names.TEXT, [len(texts)], "BYTES")
            tensor.set_data_from_numpy(data)
            started = time.perf_counter()
            await client.infer(names.ENSEMBLE, [tensor])
            latencies.append((time.perf_counter() - started) * 1000)

    try:
        begun = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        return len(latencies), time.perf_counter() - begun, latencies
    finally:
        await client.close()


def measure(url: str, variant: str, concurrency: int, texts_per_request: int, seconds: float = 8.0) -> Point:
    """``concurrency`` clients sending ``texts_per_request`` short sentences per request for ``seconds``."""
    import tritonclient.grpc as grpcclient

    stats = grpcclient.InferenceServerClient(url)
    texts = [SENTENCE] * texts_per_request
    asyncio.run(_load(url, min(concurrency, 8), texts, 1.0))  # warm-up
    before = _totals(stats.get_inference_statistics())
    requests, elapsed, latencies = asyncio.run(_load(url, concurrency, texts, seconds))
    after = _totals(stats.get_inference_statistics())
    stats.close()
    delta = {m: tuple(a - b for a, b in zip(after[m], before.get(m, (0, 0, 0)))) for m in after}
    served = requests * texts_per_request
    return Point(variant, concurrency, texts_per_request, requests, elapsed, latencies,
                 {m: delta[m][2] / 1e6 / served for m in STEPS if m in delta},
                 delta[names.MODEL][0] / max(1, delta[names.MODEL][1]),
                 delta[names.TOKENIZER][0] / max(1, delta[names.TOKENIZER][1]))


def markdown(points: list[Point]) -> str:
    lines = ["| variant | clients | texts/request | texts/s | p50 ms | p99 ms | tokenizer ms/text | "
             "ner_model ms/text | aggregate ms/text | requests per text-step execute | ner_model average batch |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        step = [f"{p.step_ms_per_text.get(m, float('nan')):.3f}" for m in STEPS]
        lines.append(f"| {p.variant} | {p.concurrency} | {p.texts_per_request} | {p.texts_per_s:.0f} | "
                     f"{p.percentile(50):.1f} | {p.percentile(99):.1f} | {' | '.join(step)} | "
                     f"{p.text_average_batch:.1f} | {p.model_average_batch:.1f} |")
    return "\n".join(lines)

"""Overload and one request's cost, measured on a real server: ``python -m triton_ner_loadtest.overload``.

- Burst: many requests at once, far more than the steps' queues hold. Triton's queue policy refuses the excess
  at once with ``UNAVAILABLE`` ("Exceeds maximum queue size"); the accepted ones are answered. Figures: burst
  size, refusals and their latency, the accepted requests' latency, the server's memory (the ``tritonserver``
  process and its Python stubs) before, at peak and after, and the time until a lone request is as fast again
  as before the burst.
- Retried burst: the same burst through :class:`~triton_ner.client.AsyncNerClient`, which retries a refused
  request with backoff; every text is answered, and Triton's statistics show each request answered once.
- Heavy request (``--heavy``): one request at the per-request token limit with a timeout, and short requests
  sent while it runs: their latency, and when the heavy one stops (between model runs, at its timeout).

The command exports the fixture or the full-size benchmark model into a temporary folder with the queue sizes
given, starts a server on free ports, measures, and prints the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from triton_ner import cli
from triton_ner.core import names
from triton_ner_loadtest.memory import MemorySampler, tree_rss_mb

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PROG = "overload"
SHORT = "Wolfgang lives in Berlin and works for Siemens ."


@dataclass(frozen=True)
class Outcome:
    """One request's end: ``ok`` or the status (gRPC status name or HTTP code), after ``latency_s``."""

    status: str
    latency_s: float
    message: str = ""
    entities: list | None = None


def _module(protocol: str) -> ModuleType:
    if protocol == "grpc":
        import tritonclient.grpc.aio as module
    else:
        import tritonclient.http.aio as module
    return module


async def send_all(url: str, requests: list[list[str]], protocol: str = "grpc",
                   timeout_s: float | None = None) -> list[Outcome]:
    """Send every request at once over one connection; each one's outcome, in order."""
    import json

    from tritonclient.utils import InferenceServerException

    module = _module(protocol)
    client = module.InferenceServerClient(url)

    async def one(texts: list[str]) -> Outcome:
        tensor = module.InferInput(names.TEXT, [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
        options = {"timeout": int(timeout_s * 1e6)} if timeout_s else {}
        started = time.perf_counter()
        try:
            result = await client.infer(names.ENSEMBLE, [tensor], **options)
        except InferenceServerException as error:
            status = str(error.status()).removeprefix("StatusCode.")
            return Outcome(status, time.perf_counter() - started, error.message() or "")
        documents = result.as_numpy(names.ENTITIES)
        return Outcome("ok", time.perf_counter() - started, entities=[json.loads(d) for d in documents])

    try:
        return await asyncio.gather(*(one(texts) for texts in requests))
    finally:
        await client.close()


def latency(url: str, text: str = SHORT, protocol: str = "grpc") -> float:
    """Seconds one lone request of ``text`` takes."""
    outcome = asyncio.run(send_all(url, [[text]], protocol))[0]
    if outcome.status != "ok":
        raise RuntimeError(f"a lone request failed: {outcome.status} {outcome.message}")
    return outcome.latency_s


def recovery_s(url: str, baseline_s: float, limit_s: float = 120.0, protocol: str = "grpc") -> float:
    """Seconds until a lone request takes at most twice ``baseline_s`` (or 50 ms more) again."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        if latency(url, protocol=protocol) <= max(2 * baseline_s, baseline_s + 0.05):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"latency did not recover within {limit_s:g} s")


def burst_texts(size: int, texts_per_request: int) -> list[list[str]]:
    """``size`` requests of ``texts_per_request`` distinct sentences each (so a duplicate would show)."""
    from triton_ner.export import corpus

    texts = corpus.texts(size * texts_per_request, seed=12)
    return [texts[i:i + texts_per_request] for i in range(0, len(texts), texts_per_request)]


@dataclass
class BurstFigures:
    """What a burst did; latencies in seconds, memory in MiB."""

    size: int
    texts_per_request: int
    accepted: int
    refused: int
    refusal_p50_s: float
    refusal_max_s: float
    accepted_max_s: float
    wall_s: float
    baseline_s: float
    recovery_s: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    refusals: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{n} × {m}" for m, n in self.refusals.most_common())
        return [
            f"burst: {self.size} requests of {self.texts_per_request} texts at once, over {self.wall_s:.2f} s",
            f"  accepted {self.accepted} (slowest {self.accepted_max_s:.2f} s); refused {self.refused}: {kinds}",
            f"  refusal latency: median {self.refusal_p50_s * 1e3:.0f} ms, slowest {self.refusal_max_s * 1e3:.0f} ms",
            f"  lone request before: {self.baseline_s * 1e3:.0f} ms; back within 2× after {self.recovery_s:.2f} s",
            f"  server memory (MiB): {self.rss_before_mb:.0f} before, {self.rss_peak_mb:.0f} at peak, "
            f"{self.rss_after_mb:.0f} after",
        ]


def _refusal_kind(message: str) -> str:
    for kind in ("Exceeds maximum queue size", "Request timeout expired"):
        if kind in message:
            return kind
    return message


def burst(url: str, pid: int, requests: list[list[str]], protocol: str = "grpc",
          ) -> tuple[BurstFigures, list[Outcome]]:
    """Send ``requests`` all at once to the server (process ``pid``) and measure what happens."""
    latency(url, protocol=protocol)  # warm
    baseline = statistics.median(latency(url, protocol=protocol) for _ in range(5))
    before = tree_rss_mb(pid)
    started = time.perf_counter()
    with MemorySampler(pid, every=0.1) as memory:
        outcomes = asyncio.run(send_all(url, requests, protocol))
    wall = time.perf_counter() - started
    recovered = recovery_s(url, baseline, protocol=protocol)
    refused = [o for o in outcomes if o.status != "ok"]
    accepted = [o for o in outcomes if o.status == "ok"]
    figures = BurstFigures(
        size=len(requests), texts_per_request=len(requests[0]), accepted=len(accepted), refused=len(refused),
        refusal_p50_s=statistics.median(o.latency_s for o in refused) if refused else 0.0,
        refusal_max_s=max((o.latency_s for o in refused), default=0.0),
        accepted_max_s=max((o.latency_s for o in accepted), default=0.0), wall_s=wall, baseline_s=baseline,
        recovery_s=recovered, rss_before_mb=before, rss_peak_mb=max(memory.peak_mb, before),
        rss_after_mb=tree_rss_mb(pid),
        refusals=Counter(f"{o.status} {_refusal_kind(o.message)}" for o in refused))
    return figures, outcomes


def ensemble_counts(url: str) -> tuple[int, int]:
    """Triton's counts of successful and failed requests of the ensemble since the server started."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(names.ENSEMBLE).model_stats[0].inference_stats
        return stats.success.count, stats.fail.count
    finally:
        client.close()


@dataclass
class RetriedFigures:
    """A burst sent through the client with retries: every text answered once."""

    size: int
    texts: int
    answered: int
    wall_s: float
    served: int  # requests the ensemble answered (Triton's statistics)
    refused: int  # requests the ensemble refused (retried by the client)

    def lines(self) -> list[str]:
        return [f"retried burst: {self.size} requests ({self.texts} texts) through AsyncNerClient with retries: "
                f"{self.answered} texts answered in {self.wall_s:.2f} s; the server answered {self.served} "
                f"requests (one per request, none twice) and refused {self.refused} that the client retried"]


def retried_burst(grpc_url: str, requests: list[list[str]], retries: int = 20, backoff: float = 0.2,
                  ) -> tuple[RetriedFigures, list]:
    """The requests at once through :class:`AsyncNerClient` (one batch per request, all in flight); the
    entities of every text, in order."""
    from triton_ner.client import AsyncNerClient

    texts = [t for request in requests for t in request]

    async def run() -> list:
        async with AsyncNerClient(grpc_url, batch_size=len(requests[0]), concurrency=len(requests),
                                  retries=retries, backoff=backoff, timeout=300) as client:
            return await client.predict(texts)

    served, failed = ensemble_counts(grpc_url)
    started = time.perf_counter()
    results = asyncio.run(run())
    wall = time.perf_counter() - started
    served_after, failed_after = ensemble_counts(grpc_url)
    return RetriedFigures(len(requests), len(texts), len(results), wall, served_after - served,
                          failed_after - failed), results


def window_texts(tokenizer: PreTrainedTokenizerBase, count: int) -> list[str]:
    """``count`` texts of one full window each (the model's length less [CLS] and [SEP]): as many tokens as
    a request of ``count`` windows can hold."""
    from triton_ner.core.tokenization import window_tokens

    per_window = window_tokens(tokenizer)
    word = "the"
    if len(tokenizer(word, add_special_tokens=False)["input_ids"]) != 1:
        raise ValueError(f"{word!r} is not one token for this tokenizer")
    return [" ".join([word] * per_window)] * count


@dataclass
class HeavyFigures:
    """A request at the token limit with a timeout, and short requests sent while it ran."""

    tokens: int
    windows: int
    timeout_s: float
    short_alone_s: float
    short_during_s: list[float]
    heavy_status: str
    heavy_s: float
    heavy_message: str

    def lines(self) -> list[str]:
        during = ", ".join(f"{s * 1e3:.0f}" for s in self.short_during_s)
        return [f"heavy request: {self.tokens:,} tokens in {self.windows} windows (the per-request limit), "
                f"timeout {self.timeout_s:g} s: {self.heavy_status} after {self.heavy_s:.1f} s "
                f"({self.heavy_message})",
                f"  a short request alone: {self.short_alone_s * 1e3:.0f} ms; sent while the heavy one ran: "
                f"{during} ms"]


def heavy(url: str, texts: list[str], tokens: int, timeout_s: float, shorts: int = 3,
          delay_s: float = 2.0) -> HeavyFigures:
    """Send ``texts`` as one request with Triton's request timeout ``timeout_s``, then, ``delay_s`` later and
    one after the other, ``shorts`` short requests; measure both."""
    latency(url)
    alone = statistics.median(latency(url) for _ in range(3))
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.extend(asyncio.run(send_all(url, [texts],
                                                                                   timeout_s=timeout_s))))
    thread.start()
    time.sleep(delay_s)
    during = [latency(url) for _ in range(shorts)]
    thread.join()
    result = outcome[0]
    return HeavyFigures(tokens, len(texts), timeout_s, alone, during, result.status, result.latency_s,
                        result.message)


app = cli.command()


@app.command()
def main(
    model: Annotated[str, typer.Option(help="fixture (small, fast) or benchmark (full size, random weights).")]
    = "fixture",
    size: Annotated[int, typer.Option("--burst", min=1, help="Requests sent at once.")] = 400,
    texts_per_request: Annotated[int, typer.Option(min=1, help="Texts in each request of the burst.")] = 16,
    queue_size: Annotated[int, typer.Option(min=1, help="Queue size of every step.")] = 16,
    queue_timeout: Annotated[float, typer.Option(help="Longest wait in a queue (s).")] = 10.0,
    heavy_request: Annotated[bool, typer.Option("--heavy/--no-heavy", help="Also send a request at the token "
                                                "limit and short ones beside it.")] = False,
    heavy_timeout: Annotated[float, typer.Option(help="Timeout of the heavy request (s).")] = 20.0,
) -> None:
    """Measure a burst far above the queues' capacity, its retried twin, and optionally one heavy request."""
    from triton_ner.core.errors import ServerError
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.configs import ServingOptions
    from triton_ner.export.fixture import benchmark_model, fixture_model
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    if model not in ("fixture", "benchmark"):
        raise cli.fail(PROG, f"--model {model!r} is not one of: fixture, benchmark", cli.USAGE)
    options = ServingOptions(max_queue_size=queue_size, text_queue_size=queue_size, queue_timeout_s=queue_timeout)
    with tempfile.TemporaryDirectory(prefix="ner-overload-") as work, cli.one_line_errors(PROG, ServerError):
        checkpoint = benchmark_model() if model == "benchmark" else fixture_model("conll")
        repository = Path(work) / "model_repository"
        cli.say(PROG, f"exporting the {model} model with queues of {queue_size}")
        build(Checkpoint(checkpoint, model), repository, ExportPlan(options=options), log=lambda _: None)
        with TritonServer(repository, free_ports()) as server:
            requests = burst_texts(size, texts_per_request)
            figures, _ = burst(server.grpc_url, server.started.pid, requests)
            lines = figures.lines()
            retried, _ = retried_burst(server.grpc_url, requests)
            lines += retried.lines()
            if heavy_request:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR)
                windows = options.max_tokens_per_request // tokenizer.model_max_length
                lines += heavy(server.grpc_url, window_texts(tokenizer, windows),
                               windows * tokenizer.model_max_length, heavy_timeout).lines()
    print("\n".join(lines))


if __name__ == "__main__":
    app()

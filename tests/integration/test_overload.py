"""Overload: a burst far above capacity on a server whose steps queue at most 16 requests each.

Triton's queue policy (``max_queue_size``, ``default_timeout_microseconds``, ``REJECT``, written by the export
into every step's configuration) refuses the excess at once with ``UNAVAILABLE``; the accepted requests get the
pipeline's answer, the server's memory stays well under what the same burst takes with queues that hold it all, a
lone request is soon as fast as before, and the client's retries recover every refused request without answering
any twice. Run with ``-s`` for the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.parity import assert_same
from triton_ner.client import AsyncNerClient, ServerBusy
from triton_ner.export import corpus
from triton_ner.export.configs import ServingOptions
from triton_ner.server.launcher import TritonServer
from triton_ner_loadtest.overload import burst, burst_texts, retried_burst, send_all

QUEUE = 16
OPTIONS = ServingOptions(max_queue_size=QUEUE, text_queue_size=QUEUE, queue_timeout_s=10.0)
# Queues that hold any burst, and a wait that none of it reaches: every request is taken.
UNBOUNDED = ServingOptions(max_queue_size=1 << 20, text_queue_size=1 << 20, queue_timeout_s=3600.0)
BURST, TEXTS_PER_REQUEST = 400, 16  # 25 times what the three queues hold together
REFUSALS = ("Exceeds maximum queue size", "Request timeout expired")


@contextlib.contextmanager
def _server(checkpoint: Path, options: ServingOptions, folder: Path) -> Iterator[TritonServer]:
    """A server of the fixture model exported into ``folder`` with ``options``."""
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports

    repository = folder / "model_repository"
    build(Checkpoint(checkpoint, "fixture conll"), repository, ExportPlan(options=options), log=lambda _: None)
    with TritonServer(repository, free_ports()) as server:
        yield server


@pytest.fixture(scope="module")
def small_queues(checkpoint_of, tmp_path_factory):
    """A server of the fixture model exported with queues of 16 requests per step."""
    with _server(checkpoint_of("conll"), OPTIONS, tmp_path_factory.mktemp("small-queues")) as server:
        yield server


@pytest.fixture(scope="module")
def unbounded_queues(checkpoint_of, tmp_path_factory):
    """The same with queues that take every request of a burst."""
    with _server(checkpoint_of("conll"), UNBOUNDED, tmp_path_factory.mktemp("unbounded-queues")) as server:
        yield server


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_burst_is_refused_quickly_and_the_accepted_are_right(protocol, small_queues, pipelines, capsys):
    url = small_queues.grpc_url if protocol == "grpc" else small_queues.http_url
    requests = burst_texts(BURST, TEXTS_PER_REQUEST)
    figures, outcomes = burst(url, small_queues.process.pid, requests, protocol)
    with capsys.disabled():
        print(f"\n{protocol}: " + "\n".join(figures.lines()))
    refused = [o for o in outcomes if o.status != "ok"]
    assert len(refused) >= BURST // 2  # far above capacity
    unavailable = "UNAVAILABLE" if protocol == "grpc" else "503"
    assert all(o.status == unavailable and any(r in o.message for r in REFUSALS) for o in refused), refused[:3]
    full = [o.latency_s for o in refused if REFUSALS[0] in o.message]
    assert full and sorted(full)[len(full) // 2] < 1.0 and max(full) < 5.0  # refused at once, not queued
    pipe = pipelines("simple")
    for texts, outcome in zip(requests, outcomes, strict=True):
        if outcome.status == "ok":
            for text, got in zip(texts, outcome.entities, strict=True):
                assert_same(got, pipe(text))
    assert figures.accepted >= QUEUE
    assert figures.recovery_s < 30


def _long_requests(size: int, texts_per_request: int, sentences: int) -> list[list[str]]:
    """``size`` requests of ``texts_per_request`` texts of ``sentences`` generated sentences (about 12 tokens each)."""
    pieces = corpus.texts(size * texts_per_request * sentences, seed=13)
    texts = [" ".join(pieces[i:i + sentences]) for i in range(0, len(pieces), sentences)]
    return [texts[i:i + texts_per_request] for i in range(0, len(texts), texts_per_request)]


def test_the_queues_bound_the_memory_a_burst_takes(small_queues, unbounded_queues, capsys):
    """The same burst, of texts of about one window each, on queues of 16 and on queues that hold it all: the
    text step takes up to ``text_batch_size`` queued requests into one execute, so what it holds at once grows with
    the queue."""
    requests = _long_requests(200, 8, 40)
    figures = []
    for server in (small_queues, unbounded_queues):
        # First as many at once as the small queues take, so that the memory before the burst is the memory of
        # such requests (the first long windows grow each process's heap and ONNX Runtime's arena).
        asyncio.run(send_all(server.grpc_url, requests[:QUEUE]))
        figures.append(burst(server.grpc_url, server.process.pid, requests)[0])
    bounded, unbounded = figures
    growth = {name: f.rss_peak_mb - f.rss_before_mb for name, f in (("bounded", bounded), ("unbounded", unbounded))}
    with capsys.disabled():
        print(f"\nqueues of {QUEUE}: " + "\n".join(bounded.lines()) + "\nqueues that hold it all: "
              + "\n".join(unbounded.lines()) + f"\nmemory growth (MiB): {growth}")
    # Measured: 27-88 MiB on the small queues against 308-348 MiB on queues that hold it all (the same burst);
    # queues that do not bound it grow as much (345 against 335).
    assert growth["bounded"] < growth["unbounded"] / 2
    assert unbounded.refused == 0 and bounded.refused >= len(requests) // 2


def test_client_retries_recover_every_refusal_without_duplicates(small_queues, pipelines, capsys):
    requests = burst_texts(200, 8)
    figures, results = retried_burst(small_queues.grpc_url, requests)
    with capsys.disabled():
        print("\n" + "\n".join(figures.lines()))
    assert figures.refused > 0  # the burst was refused at first ...
    assert figures.served == len(requests)  # ... then each request was answered exactly once
    pipe = pipelines("simple")
    texts = [t for request in requests for t in request]
    assert len(results) == len(texts)
    for text, got in zip(texts, results, strict=True):
        assert_same(got, pipe(text))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_full_queue_is_server_busy_not_unreachable(protocol, small_queues):
    url = small_queues.grpc_url if protocol == "grpc" else small_queues.http_url
    texts = [t for request in burst_texts(BURST, 4) for t in request]

    async def run():
        # 100 in flight (aiohttp's default connection limit): twice what the queues hold, and no connection
        # refused for their number, which would be ServerUnreachable, rightly.
        async with AsyncNerClient(url, protocol, batch_size=4, concurrency=100, retries=0) as client:
            await client.predict(texts)

    with pytest.raises(ServerBusy, match=r"is busy and refused the request: .*Exceeds maximum queue size"):
        asyncio.run(run())

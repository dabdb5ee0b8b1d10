"""Overload: a burst far above capacity on a server whose steps queue at most 16 requests each.

Triton's queue policy (``max_queue_size``, ``default_timeout_microseconds``, ``REJECT``, written by the export
into every step's configuration) refuses the excess at once with ``UNAVAILABLE``; the accepted requests get the
pipeline's answer, the server's memory stays bounded, a lone request is soon as fast as before, and the client's
retries recover every refused request without answering any twice. Run with ``-s`` for the figures.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.parity import assert_same
from triton_ner.client import AsyncNerClient, ServerBusy
from triton_ner.export.configs import ServingOptions
from triton_ner_loadtest.overload import burst, burst_texts, retried_burst

QUEUE = 16
OPTIONS = ServingOptions(max_queue_size=QUEUE, text_queue_size=QUEUE, queue_timeout_s=10.0)
BURST, TEXTS_PER_REQUEST = 400, 16  # 25 times what the three queues hold together
REFUSALS = ("Exceeds maximum queue size", "Request timeout expired")


@pytest.fixture(scope="module")
def small_queues(checkpoint_of, tmp_path_factory):
    """A server of the fixture model exported with queues of 16 requests per step."""
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    repository = tmp_path_factory.mktemp("small-queues") / "model_repository"
    build(Checkpoint(checkpoint_of("conll"), "fixture conll"), repository, ExportPlan(options=OPTIONS),
          log=lambda _: None)
    with TritonServer(repository, free_ports()) as server:
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
    assert figures.rss_peak_mb - figures.rss_before_mb < 300  # queues bound what a burst can hold
    assert figures.recovery_s < 30


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

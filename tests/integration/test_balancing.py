"""Client-side balancing on two real Triton servers over the exported fixture repository: Triton's own per-model
statistics show each served its share, and stopping one in the middle of a run fails no request (the client's
retries move them to the other). The figures are printed (pytest -s)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer

pytestmark = pytest.mark.slow
SEED = "My name is Wolfgang and I live in Berlin"
TEXTS = [SEED, "Angela Merkel visited Paris.", "Apple opened an office in London last May."]


def served(server: TritonServer) -> int:
    """Requests the ``ner`` ensemble of ``server`` answered successfully, by Triton's statistics."""
    url = f"http://{server.http_url}/v2/models/{names.ENSEMBLE}/stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        stats = json.load(response)["model_stats"]
    return sum(model["inference_stats"]["success"]["count"] for model in stats)


def _two_servers(repository) -> Iterator[list[TritonServer]]:
    servers = [TritonServer(repository, free_ports()) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def two_servers(repository) -> Iterator[list[TritonServer]]:
    yield from _two_servers(repository)


@pytest.fixture
def two_servers_to_stop(repository) -> Iterator[list[TritonServer]]:
    """A pair of its own: the test stops one."""
    yield from _two_servers(repository)


def _texts(count: int) -> list[str]:
    return [TEXTS[i % len(TEXTS)] for i in range(count)]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_requests_are_spread_evenly(two_servers, protocol):
    urls = [s.grpc_url if protocol == "grpc" else s.http_url for s in two_servers]
    before = [served(s) for s in two_servers]
    with NerClient(urls, protocol, batch_size=4, concurrency=2) as client:
        results = client.predict(_texts(200))
    # Triton counts an ensemble request after its response is sent: the last one may be counted a moment late.
    deadline = time.monotonic() + 5
    while (sum(counts := [served(s) - b for s, b in zip(two_servers, before, strict=True)]) < 50
           and time.monotonic() < deadline):
        time.sleep(0.05)
    print(f"\nbalancing ({protocol}): 50 requests of 4 texts over 2 servers: {counts[0]} + {counts[1]} served")
    assert sum(counts) == 50 and abs(counts[0] - counts[1]) <= 1
    assert results[0][0]["word"] == "Wolfgang" and len(results) == 200


def test_a_server_stopped_mid_run_fails_no_request(two_servers_to_stop, caplog):
    first, second = two_servers_to_stop
    stopper = threading.Thread(target=second.stop)
    total, batch_size, stop_at = 400, 4, 120
    second_before = served(second)
    first_before = served(first)
    second_at_stop = []

    def texts() -> Iterator[str]:
        for i, text in enumerate(_texts(total)):
            if i == stop_at:
                second_at_stop.append(served(second) - second_before)
                stopper.start()  # SIGTERM, as Kubernetes sends it; stop() waits for the exit
            yield text

    with caplog.at_level(logging.INFO, logger="triton_ner.client.library"):
        with NerClient([first.grpc_url, second.grpc_url], batch_size=batch_size, concurrency=4,
                       retries=3) as client:
            results = list(client.predict_iter(texts()))
    stopper.join(60)
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    requests = total // batch_size
    by_first = served(first) - first_before
    print(f"\nfailover: {requests} requests, {total} texts; the second server stopped (SIGTERM) after "
          f"{stop_at} texts queued, having served {second_at_stop[0]}; the first served {by_first}, the second "
          f"{requests - by_first}; failed requests 0; retries {len(retries)}")
    for message in retries:
        print(f"  {message}")
    assert len(results) == total and results[0][0]["word"] == "Wolfgang"
    assert all(r == results[i % len(TEXTS)] for i, r in enumerate(results))  # every text answered, in order
    assert requests - by_first >= second_at_stop[0] > 0  # the second took its share until stopped
    assert by_first > requests / 2  # then the first took the rest
    assert len(retries) <= 4  # at most the requests in flight when it stopped
    assert second.process is None  # it really stopped

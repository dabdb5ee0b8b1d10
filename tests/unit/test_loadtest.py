"""Pure parts of the load test and the benchmark: targets, texts, the locust command line."""

import random
from pathlib import Path

import pytest

from triton_ner.server.arguments import Ports
from triton_ner_loadtest.hosts import is_allowed_host
from triton_ner_loadtest.run import locust_command
from triton_ner_loadtest.texts import benchmark_corpus, scenario_text


@pytest.mark.parametrize(("url", "allowed"), [
    ("localhost:8001", True), ("127.0.0.1:8001", True), ("[::1]:8001", True), ("triton:8001", True),
    ("203.0.113.5:8001", False), ("no-such-host.invalid:8001", False),
])
def test_load_only_goes_to_loopback_or_the_compose_host(url, allowed):
    assert is_allowed_host(url) is allowed


def test_scenarios_have_their_sizes():
    rng = random.Random(0)
    assert len(scenario_text("short", rng).split()) < 40
    assert 60 <= len(scenario_text("news", rng).split()) <= 150
    assert len(scenario_text("long", rng).split()) >= 600
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_text("huge", rng)


def test_benchmark_corpus_is_fixed_by_its_seed():
    texts = benchmark_corpus(200, seed=5)
    assert texts == benchmark_corpus(200, seed=5) != benchmark_corpus(200, seed=6)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) >= 5 and sorted(lengths)[-2] <= 600 and 600 in lengths


def test_locust_command_names_the_user_and_thresholds():
    command = locust_command(Path("out"), 4, 2, "5s", "http", "news", 2, "first", Ports(1, 2, 3), 0.0, 250.0)
    assert command[-1] != "GrpcNerUser" and "HttpNerUser" in command
    assert command[command.index("--tags") + 1] == "news"
    assert command[command.index("--max-p95-ms") + 1] == "250.0"
    assert command[command.index("--grpc-url") + 1] == "localhost:2"

"""Client-side balancing without a server: targets, round-robin, failover and DNS re-resolution on a fake clock,
and the client's requests spread over fake servers (tests/integration/test_balancing.py does it on real ones)."""

from __future__ import annotations

import time

import pytest
from tritonclient.utils import InferenceServerException

from triton_ner.client import ModelNotReady, NerClient, ServerUnreachable
from triton_ner.client.balancing import Balancer, join_address, parse_target, split_address


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("target", "parsed"), [
    ("a:1", (["a:1"], None)),
    ("a:1, b:2,a:1", (["a:1", "b:2"], None)),
    (["a:1", "[::1]:2"], (["a:1", "[::1]:2"], None)),
    ("dns:///ner-triton-headless.ner.svc.cluster.local:8001", ([], ("ner-triton-headless.ner.svc.cluster.local",
                                                                    8001))),
])
def test_targets(target, parsed):
    assert parse_target(target) == parsed


@pytest.mark.parametrize(("target", "message"), [
    ("", "no server address given"),
    ("http://a:1", "must be host:port without a scheme"),
    ("a:1,dns:///b:2", "must be host:port without a scheme"),
    ("a", "'a' is not host:port"),
    ("a:99999", "'a:99999' is not host:port"),
    ("dns:///name", "'name' is not host:port"),
])
def test_bad_targets_are_refused(target, message):
    with pytest.raises(ValueError, match=message):
        parse_target(target)


def test_ipv6_addresses_keep_their_brackets():
    assert split_address("[::1]:8001") == ("::1", 8001)
    assert join_address("::1", 8001) == "[::1]:8001" and join_address("10.0.0.1", 1) == "10.0.0.1:1"


def test_round_robin_in_turn():
    balancer = Balancer("a:1,b:2,c:3")
    assert [balancer.pick() for _ in range(7)] == ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"]


def test_a_failed_address_is_skipped_for_the_cooldown():
    clock = Clock()
    balancer = Balancer(["a:1", "b:2"], cooldown=5, clock=clock)
    balancer.failed("a:1")
    assert balancer.available() == 1
    assert {balancer.pick() for _ in range(4)} == {"b:2"}
    clock.now += 5
    assert balancer.available() == 2
    assert {balancer.pick() for _ in range(4)} == {"a:1", "b:2"}


def test_when_every_address_failed_the_first_to_fail_is_tried_again():
    clock = Clock()
    balancer = Balancer(["a:1", "b:2"], clock=clock)
    balancer.failed("b:2")
    clock.now += 1
    balancer.failed("a:1")
    assert balancer.available() == 0
    assert balancer.pick() == "b:2"


def test_dns_names_are_resolved_again_after_refresh_and_when_all_failed():
    clock = Clock()
    answers = {"svc": ["10.0.0.1:8001", "10.0.0.2:8001"]}
    resolved = []

    def resolver(name, port):
        resolved.append(name)
        return answers[name]

    balancer = Balancer("dns:///svc:8001", refresh=30, resolver=resolver, clock=clock)
    assert balancer.addresses == ["10.0.0.1:8001", "10.0.0.2:8001"] and len(resolved) == 1
    answers["svc"] = ["10.0.0.3:8001"]  # a rollout replaced the pods
    balancer.pick()
    assert len(resolved) == 1  # cached
    for address in ("10.0.0.1:8001", "10.0.0.2:8001"):
        balancer.failed(address)
    assert balancer.pick() == "10.0.0.3:8001" and len(resolved) == 2
    answers["svc"] = ["10.0.0.3:8001", "10.0.0.4:8001"]  # scaled out
    clock.now += 30
    assert {balancer.pick() for _ in range(4)} == {"10.0.0.3:8001", "10.0.0.4:8001"}


def test_dns_failing_later_keeps_the_last_addresses():
    clock = Clock()
    answers = [["10.0.0.1:1"]]

    def resolver(name, port):
        if not answers:
            raise OSError("Name or service not known")
        return answers.pop()

    balancer = Balancer("dns:///svc:1", refresh=1, resolver=resolver, clock=clock)
    clock.now += 2
    assert balancer.pick() == "10.0.0.1:1"


def test_a_name_that_does_not_resolve_is_unreachable():
    with pytest.raises(ServerUnreachable, match=r"^cannot resolve dns:///no-such-host\.invalid:8001: "):
        Balancer("dns:///no-such-host.invalid:8001")


def test_localhost_resolves_to_loopback():
    assert set(Balancer("dns:///localhost:8001").addresses) <= {"127.0.0.1:8001", "[::1]:8001"}


class FakeServer:
    """Answers each text with itself; refuses with UNAVAILABLE while ``down``."""

    def __init__(self, address: str):
        self.address = address
        self.down = False
        self.unloaded = False
        self.served = 0
        self.refused = 0

    def infer(self, model, inputs, **options):
        if self.down or self.unloaded:
            self.refused += 1
            # What Triton says while it stops: first its models are unloaded, then its ports close.
            message = ("Request for unknown model: 'ner' has no available versions" if self.unloaded
                       else "failed to connect to all addresses")
            raise InferenceServerException(message, "StatusCode.UNAVAILABLE")
        self.served += 1
        return inputs

    def close(self):
        pass


def _client(servers: dict[str, FakeServer], **settings) -> NerClient:
    client = NerClient(list(servers), **settings)
    client._connection = lambda address: servers[address]
    client._request = lambda texts: (list(texts), [])
    client._entities = lambda result: [[{"word": text}] for text in result]
    return client


def test_requests_go_round_robin_and_fail_over_at_once(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda delay: delay == 0 or pytest.fail("a failover waited"))
    servers = {address: FakeServer(address) for address in ("a:1", "b:2")}
    with _client(servers, batch_size=1, retries=1) as client:
        client.predict([str(i) for i in range(10)])
        assert [s.served for s in servers.values()] == [5, 5]
        servers["a:1"].down = True
        client.predict([str(i) for i in range(10)])
    assert servers["a:1"].refused == 1  # skipped after the first failure, for the cooldown
    assert servers["b:2"].served == 5 + 10


def test_every_server_down_is_unreachable_after_the_retries(monkeypatch):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    servers = {address: FakeServer(address) for address in ("a:1", "b:2")}
    for server in servers.values():
        server.down = True
    with _client(servers, retries=3, backoff=1.0) as client:
        with pytest.raises(ServerUnreachable, match=r"^cannot reach [ab]:\d \(gRPC\): .*\(gave up after 4 attempts\)$"):
            client.predict("Berlin")
    assert sleeps[0] == 0.0 and all(delay > 0 for delay in sleeps[1:])  # failover first, then backoff
    assert sum(s.refused for s in servers.values()) == 4


def test_a_server_without_the_model_is_skipped_when_another_has_it(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda delay: delay == 0 or pytest.fail("a failover waited"))
    servers = {address: FakeServer(address) for address in ("a:1", "b:2")}
    servers["a:1"].unloaded = True
    with _client(servers, batch_size=1, retries=1) as client:
        assert len(client.predict([str(i) for i in range(6)])) == 6
    assert (servers["a:1"].refused, servers["b:2"].served) == (1, 6)


def test_a_model_no_server_has_is_not_ready_without_backoff(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda delay: delay == 0 or pytest.fail("backed off"))
    servers = {address: FakeServer(address) for address in ("a:1", "b:2")}
    for server in servers.values():
        server.unloaded = True
    with _client(servers, retries=3) as client, pytest.raises(ModelNotReady, match="gave up after 2 attempts"):
        client.predict("Berlin")
    # One server alone: not ready at once, as before balancing.
    with _client({"a:1": servers["a:1"]}, retries=3) as client, pytest.raises(ModelNotReady) as error:
        client.predict("Berlin")
    assert "attempts" not in str(error.value)


@pytest.mark.parametrize(("url", "message"), [
    ("dns:///no-such-host.invalid:8001", "client: error: cannot resolve dns:///no-such-host.invalid:8001: "),
    ("localhost:1,http://b:2", "client: error: url 'http://b:2' must be host:port without a scheme"),
])
def test_the_command_says_what_is_wrong_with_the_servers_in_one_line(url, message):
    from typer.testing import CliRunner

    from triton_ner.client.__main__ import app

    result = CliRunner().invoke(app, ["--url", url, "--output", "json", "Berlin"])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1

"""The client's pure parts and its request loop, on a fake server: batching, order, concurrency, typed errors,
retries."""

import asyncio
import json
import re
import threading
import time

import aiohttp
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from triton_ner.client import (
    AccessDenied,
    AsyncNerClient,
    ClientError,
    DeadlineExceeded,
    InvalidArgument,
    ModelNotReady,
    NerClient,
    ServerBusy,
    ServerUnreachable,
)
from triton_ner.client.errors import backoff_delay, renumber, typed_error
from triton_ner.client.library import batches, request_parameters
from triton_ner.core.parameters import Strategy


def test_batches_keep_order_and_number_the_first_text():
    assert list(batches("abcde", 2)) == [(0, ["a", "b"]), (2, ["c", "d"]), (4, ["e"])]
    assert list(batches("abc", None)) == [(0, ["a", "b", "c"])]
    assert list(batches([], 3)) == []


def test_batches_read_one_batch_ahead_at_most():
    read = []

    def texts():
        for i in range(10):
            read.append(i)
            yield str(i)

    first = next(batches(texts(), 3))
    assert first == (0, ["0", "1", "2"]) and read == [0, 1, 2]


def test_request_parameters_leave_defaults_to_the_server():
    assert request_parameters() == {}
    assert request_parameters(Strategy.FIRST, ["O", "MISC"], 0) == {
        "aggregation_strategy": "first", "ignore_labels": '["O", "MISC"]', "stride": 0}
    assert request_parameters("max", "O,MISC") == {"aggregation_strategy": "max", "ignore_labels": "O,MISC"}
    assert request_parameters(ignore_labels=[]) == {"ignore_labels": "[]"}


@pytest.mark.parametrize(("settings", "message"), [
    ({"protocol": "ftp"}, "protocol 'ftp' is not one of: grpc, http"),
    ({"url": "http://localhost:8000"}, "must be host:port without a scheme"),
    ({"protocol": "http", "ssl": True}, "TLS options apply to gRPC only"),
    ({"protocol": "http", "root_certificates": "ca.pem"}, "TLS options apply to gRPC only"),
    ({"batch_size": 0}, "batch_size must be at least 1, not 0"),
    ({"concurrency": 0}, "concurrency must be at least 1, not 0"),
    ({"retries": -1}, "retries must be at least 0, not -1"),
    ({"timeout": 0}, "timeout must be more than 0 seconds"),
])
@pytest.mark.parametrize("client_class", [NerClient, AsyncNerClient])
def test_bad_settings_are_refused_in_one_line(client_class, settings, message):
    with pytest.raises(ValueError, match=message):
        client_class(**settings)


def test_defaults_follow_the_protocol_and_a_certificate_means_tls():
    assert AsyncNerClient().url == "localhost:8001"
    assert AsyncNerClient(protocol="http").url == "localhost:8000"
    client = AsyncNerClient("triton:443", root_certificates="ca.pem", headers={"Infer-Key": "secret"})
    assert client.ssl and client.headers == {"infer-key": "secret"}  # gRPC metadata keys are lowercase


def _exception(status, message="the server's message"):
    return InferenceServerException(msg=message, status=status)


@pytest.mark.parametrize(("error", "kind", "message"), [
    (_exception("StatusCode.INVALID_ARGUMENT", "stride 600 must be less than 510"), InvalidArgument,
     "^stride 600 must be less than 510$"),
    (_exception("400", "aggregation_strategy 'x' is not one of"), InvalidArgument, "^aggregation_strategy 'x'"),
    (_exception("StatusCode.UNAVAILABLE", "failed to connect to all addresses"), ServerUnreachable,
     r"^cannot reach triton:8001 \(gRPC\): failed to connect to all addresses$"),
    (_exception("503", "in ensemble 'ner', [request id: <id_unknown>] Exceeds maximum queue size"), ServerBusy,
     r"^triton:8001 \(gRPC\) is busy and refused the request: in ensemble 'ner', .*Exceeds maximum queue size$"),
    (_exception("StatusCode.UNAVAILABLE", "in ensemble 'ner', Request timeout expired"), ServerBusy,
     "is busy and refused the request: .*Request timeout expired"),
    (_exception("StatusCode.NOT_FOUND", "Request for unknown model: 'ner' is not found"), ModelNotReady,
     r"^model 'ner' is not ready on triton:8001 \(gRPC\): Request for unknown model"),
    (_exception("404"), ModelNotReady, "model 'ner' is not ready"),
    (_exception("StatusCode.UNAVAILABLE", "Request for unknown model: 'ner' has no available versions"),
     ModelNotReady, "has no available versions"),
    (_exception("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded"), DeadlineExceeded,
     r"^no answer from triton:8001 \(gRPC\) within 2.5 s$"),
    (_exception("StatusCode.UNAVAILABLE", "This protocol is restricted, expecting header "
                                          "'triton-grpc-protocol-infer-key'"), AccessDenied,
     "refused the request: This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'"),
    (_exception("403", "This API is restricted, expecting header 'infer-key'"), AccessDenied, "'infer-key'"),
    (_exception("StatusCode.INTERNAL", "boom"), ClientError, r"^triton:8001 \(gRPC\): INTERNAL: boom$"),
    (TimeoutError("timed out"), DeadlineExceeded, "within 2.5 s"),
    (ConnectionRefusedError(111, "Connection refused"), ServerUnreachable, "Connection refused"),
    (aiohttp.ServerDisconnectedError(), ServerUnreachable, "Server disconnected"),
])
def test_failures_become_typed_errors(error, kind, message):
    typed = typed_error(error, "triton:8001", "grpc", "ner", 2.5)
    assert type(typed) is kind
    assert typed.retryable == (kind in (ServerUnreachable, ServerBusy))
    assert "\n" not in str(typed)
    assert re.search(message, str(typed)), str(typed)


def test_what_is_not_a_request_failure_is_not_mapped():
    assert typed_error(KeyError("x"), "triton:8001", "grpc", "ner", 1.0) is None


def test_text_numbers_count_from_the_callers_first_text():
    assert renumber("TEXT[1] is not valid UTF-8; TEXT[12] too", 64) == "TEXT[65] is not valid UTF-8; TEXT[76] too"
    assert renumber("TEXT[1] is bad", 0) == "TEXT[1] is bad"


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all():
    assert [backoff_delay(i, 0.5, 4.0, jitter=lambda: 1.0) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_delay(2, 0.5, 4.0, jitter=lambda: 0.0) == 1.0


class FakeServer:
    """Answers each text with one entity whose word is the text; fails first as told; records what it saw."""

    def __init__(self, failures=(), fail_on=None, latency=lambda first_text: 0.0):
        self.failures = list(failures)
        self.fail_on = fail_on
        self.latency = latency
        self.calls = []
        self.parameters = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def _answer(self, texts, parameters):
        self.calls.append(list(texts))
        self.parameters.append(parameters)
        if self.failures:
            raise self.failures.pop(0)
        if self.fail_on is not None and self.fail_on in texts:
            raise _exception("StatusCode.INVALID_ARGUMENT", f"TEXT[{texts.index(self.fail_on)}] is refused")
        return FakeResult(texts)

    def _enter(self):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _leave(self):
        with self.lock:
            self.in_flight -= 1

    def infer(self, model, inputs, outputs=None, parameters=None, **options):
        self._enter()
        try:
            if delay := self.latency(inputs[0]):  # not time.sleep(0): tests record the client's sleeps
                time.sleep(delay)
            return self._answer(inputs, parameters)
        finally:
            self._leave()

    def is_model_ready(self, model, **options):
        return model == "ner"


class AsyncFakeServer(FakeServer):
    async def infer(self, model, inputs, outputs=None, parameters=None, **options):
        self._enter()
        try:
            await asyncio.sleep(self.latency(inputs[0]))
            return self._answer(inputs, parameters)
        finally:
            self._leave()

    async def is_model_ready(self, model, **options):
        return model == "ner"


class FakeResult:
    def __init__(self, texts):
        self.texts = texts

    def as_numpy(self, name):
        return np.array([json.dumps([{"word": text}]).encode() for text in self.texts], dtype=np.object_)


def _on(client, server):
    client._connection = lambda address: server
    client._request = lambda texts: (list(texts), [])
    return client


def _words(results):
    return [[entity["word"] for entity in entities] for entities in results]


def test_a_string_gives_one_list_and_a_list_one_list_per_text():
    with _on(NerClient(), FakeServer()) as client:
        assert client.predict("Berlin") == [{"word": "Berlin"}]
        assert _words(client.predict(["a", "b"])) == [["a"], ["b"]]
        assert client.predict([]) == []


def test_parameters_go_with_every_request():
    server = FakeServer()
    with _on(NerClient(batch_size=2), server) as client:
        client.predict(list("abc"), aggregation_strategy="first", stride=16)
    assert server.parameters == [{"aggregation_strategy": "first", "stride": 16}] * 2


def test_sync_client_keeps_input_order_with_requests_in_parallel():
    texts = [str(i) for i in range(40)]
    # Early batches answer last, so the results come back out of order.
    server = FakeServer(latency=lambda first: 0.02 * (1 - int(first) / 40))
    with _on(NerClient(batch_size=3, concurrency=4), server) as client:
        assert _words(client.predict(texts)) == [[t] for t in texts]
    assert 1 < server.most_in_flight <= 4
    assert [len(call) for call in server.calls].count(3) == 13


def test_async_client_keeps_input_order_and_bounds_concurrency():
    texts = [str(i) for i in range(40)]
    server = AsyncFakeServer(latency=lambda first: 0.02 * (1 - int(first) / 40))

    async def run():
        async with _on(AsyncNerClient(batch_size=3, concurrency=3), server) as client:
            return await client.predict(texts)

    assert _words(asyncio.run(run())) == [[t] for t in texts]
    assert server.most_in_flight == 3


def test_unavailable_is_retried_with_backoff(monkeypatch, caplog):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    unavailable = _exception("StatusCode.UNAVAILABLE", "Socket closed")
    server = FakeServer(failures=[unavailable, unavailable])
    with (caplog.at_level("INFO", logger="triton_ner.client.library"),
          _on(NerClient(retries=3, backoff=1.0), server) as client):
        assert client.predict("Berlin") == [{"word": "Berlin"}]
    assert len(server.calls) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot reach localhost:8001 (gRPC): Socket closed; retry 1 of 3 in {sleeps[0]:.2f} s",
        f"cannot reach localhost:8001 (gRPC): Socket closed; retry 2 of 3 in {sleeps[1]:.2f} s"]


def test_retries_give_up_with_the_typed_error(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    server = FakeServer(failures=[ConnectionRefusedError(111, "Connection refused")] * 5)
    with _on(NerClient(protocol="http", retries=2), server) as client:
        with pytest.raises(ServerUnreachable, match=r"^cannot reach localhost:8000 \(HTTP\): \[Errno 111\] "
                                                    r"Connection refused \(gave up after 3 attempts\)$"):
            client.predict("Berlin")
    assert len(server.calls) == 3


@pytest.mark.parametrize("failure", [_exception("StatusCode.INVALID_ARGUMENT", "stride 'x' is bad"),
                                     _exception("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded"),
                                     _exception("StatusCode.NOT_FOUND", "unknown model")])
def test_other_failures_are_not_retried(failure, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda _: pytest.fail("retried"))
    server = FakeServer(failures=[failure])
    with _on(NerClient(retries=5), server) as client, pytest.raises(ClientError) as error:
        client.predict("Berlin")
    assert len(server.calls) == 1
    assert "attempts" not in str(error.value)


def test_an_error_that_is_not_a_request_failure_propagates_unchanged():
    server = FakeServer(failures=[KeyError("bug")])
    with _on(NerClient(retries=5), server) as client, pytest.raises(KeyError, match="bug"):
        client.predict("Berlin")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_the_servers_text_number_is_the_callers(concurrency):
    texts = [f"t{i}" for i in range(10)]
    server = FakeServer(fail_on="t6")
    with _on(NerClient(batch_size=4, concurrency=concurrency), server) as client:
        with pytest.raises(InvalidArgument, match=r"^TEXT\[6\] is refused$"):
            client.predict(texts)


def test_async_failure_cancels_the_other_requests_and_is_typed():
    texts = [f"t{i}" for i in range(30)]
    server = AsyncFakeServer(fail_on="t3", latency=lambda first: 0.0 if first == "t3" else 0.05)

    async def run():
        async with _on(AsyncNerClient(batch_size=3, concurrency=4, retries=0), server) as client:
            with pytest.raises(InvalidArgument, match=r"TEXT\[3\] is refused"):
                await client.predict(texts)
            return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    assert asyncio.run(run()) == []  # nothing left running
    assert len(server.calls) <= 4  # no request started after the failure


def test_async_unavailable_is_retried():
    unavailable = _exception("StatusCode.UNAVAILABLE", "Socket closed")
    server = AsyncFakeServer(failures=[unavailable])

    async def run():
        async with _on(AsyncNerClient(retries=1, backoff=0.001), server) as client:
            return await client.predict("Berlin")

    assert asyncio.run(run()) == [{"word": "Berlin"}]
    assert len(server.calls) == 2


def test_check_says_which_model_is_not_ready():
    with _on(NerClient(model="other"), FakeServer()) as client:
        with pytest.raises(ModelNotReady, match=r"^model 'other' is not ready on localhost:8001 \(gRPC\)$"):
            client.check()


def test_a_closed_client_says_so():
    client = NerClient()
    client.close()
    with pytest.raises(ClientError, match="the client is closed"):
        client.predict("Berlin")

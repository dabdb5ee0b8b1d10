"""The client library and command line against a real Triton: both protocols, sync and async, a 10,000-line file,
killed servers, retries, typed errors, TLS with mutual authentication and restricted APIs."""

import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from tests.parity import assert_same
from triton_ner.client import (
    AccessDenied,
    AsyncNerClient,
    ClientError,
    DeadlineExceeded,
    InvalidArgument,
    ModelNotReady,
    NerClient,
    ServerUnreachable,
)
from triton_ner.client.errors import backoff_delay
from triton_ner.export import corpus
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import START_TIMEOUT, TritonServer

SEED = "My name is Wolfgang and I live in Berlin"
KINDS = [("grpc", "sync"), ("http", "sync"), ("grpc", "async"), ("http", "async")]
PREDICT_OPTIONS = ("aggregation_strategy", "ignore_labels", "stride")
BAD_STRATEGY = "in ensemble 'ner', aggregation_strategy 'bogus' is not one of: none, simple, first, average, max"


def _url(server, protocol):
    return server.grpc_url if protocol == "grpc" else server.http_url


def predict(server, protocol, kind, texts, url=None, **settings):
    """``predict(texts)`` with a new client of that protocol and kind (sync or async), closed after."""
    options = {name: settings.pop(name) for name in PREDICT_OPTIONS if name in settings}
    url = url or _url(server, protocol)
    if kind == "sync":
        with NerClient(url, protocol, **settings) as client:
            return client.predict(texts, **options)

    async def run():
        async with AsyncNerClient(url, protocol, **settings) as client:
            return await client.predict(texts, **options)

    return asyncio.run(run())


def run_client(*args, stdin=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error", "-m", "triton_ner.client", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_error_line(result, starting):
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"client: error: {starting}") and result.stderr.count("\n") == 1, result.stderr


@pytest.fixture
def own_server(repository, tmp_path):
    """A server of this test alone, on a copy of the repository: the test may kill it."""
    own = tmp_path / "model_repository"
    shutil.copytree(repository, own)
    server = TritonServer(own, free_ports())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """10,000 generated sentences as JSON lines, with other fields around the text."""
    path = tmp_path_factory.mktemp("client") / "texts.jsonl"
    with path.open("w") as file:
        for i, text in enumerate(corpus.texts(10_000, seed=11)):
            file.write(json.dumps({"id": i, "text": text, "source": "corpus"}) + "\n")
    return path


@pytest.fixture(scope="module")
def big_file_entities(triton, big_file):
    with big_file.open() as file:
        texts = [json.loads(line)["text"] for line in file]
    with NerClient(triton.grpc_url, batch_size=500) as client:
        return client.predict(texts)


# Both protocols, both clients.

@pytest.mark.parametrize("strategy", ["none", "simple", "max"])
def test_grpc_and_http_sync_and_async_give_the_same_results(triton, parity_texts, strategy):
    want = predict(triton, "grpc", "sync", parity_texts, aggregation_strategy=strategy)
    assert any(want)
    for protocol, kind in KINDS:
        got = predict(triton, protocol, kind, parity_texts, aggregation_strategy=strategy, batch_size=7,
                      concurrency=3)
        assert len(got) == len(parity_texts)
        for text, g, w in zip(parity_texts, got, want, strict=True):
            assert_same(g, w, f"{protocol} {kind}: {text}")


@pytest.mark.parametrize(("protocol", "kind"), KINDS)
def test_a_string_gives_one_list_and_options_reach_the_server(triton, protocol, kind):
    entities = predict(triton, protocol, kind, SEED)
    assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "Wolfgang"), ("LOC", "Berlin")]
    everything = predict(triton, protocol, kind, SEED, ignore_labels=[])
    assert "O" in {e["entity_group"] for e in everything}


# Typed errors.

@pytest.mark.parametrize(("protocol", "kind"), KINDS)
def test_invalid_strategy_gives_the_servers_message_without_retrying(triton, protocol, kind, caplog):
    with caplog.at_level(logging.INFO, logger="triton_ner.client.library"), pytest.raises(InvalidArgument) as error:
        predict(triton, protocol, kind, [SEED] * 100, aggregation_strategy="bogus", batch_size=10)
    assert str(error.value) == BAD_STRATEGY
    assert caplog.records == []


def test_the_servers_text_number_counts_from_the_callers_first_text(triton):
    texts = [SEED] * 100
    texts[70] = "Berlin " * 200_000  # over the 1 MiB text limit
    with NerClient(triton.grpc_url, batch_size=64) as client:
        with pytest.raises(InvalidArgument, match=r"^in ensemble 'ner', TEXT\[70\] is 1,400,000 bytes; the most "):
            client.predict(texts)


@pytest.mark.parametrize(("protocol", "kind"), KINDS)
def test_a_request_over_the_timeout_is_deadline_exceeded(triton, protocol, kind):
    long_texts = [" ".join(corpus.texts(40, seed=i)) for i in range(100)]
    with pytest.raises(DeadlineExceeded, match="within 0.001 s"):
        predict(triton, protocol, kind, long_texts, timeout=0.001)


@pytest.mark.parametrize(("protocol", "kind"), KINDS)
def test_an_unknown_model_is_not_ready(triton, protocol, kind):
    with pytest.raises(ModelNotReady, match="model 'nope' is not ready on localhost:"):
        predict(triton, protocol, kind, SEED, model="nope")


def test_check_passes_on_the_served_model_only(triton):
    with NerClient(triton.http_url, "http") as client:
        client.check()
    with NerClient(triton.grpc_url, model="nope") as client, pytest.raises(ModelNotReady):
        client.check()


def test_a_killed_server_gives_server_unreachable(own_server):
    own_server.start()
    settings = {"retries": 1, "backoff": 0.05}
    clients = {protocol: NerClient(_url(own_server, protocol), protocol, **settings) for protocol in ("grpc", "http")}
    for client in clients.values():
        assert client.predict(SEED)[0]["word"] == "Wolfgang"  # connected before the server goes
    urls = {protocol: _url(own_server, protocol) for protocol in ("grpc", "http")}
    own_server.process.kill()
    own_server.stop()
    try:
        for protocol, client in clients.items():
            with pytest.raises(ServerUnreachable, match=rf"^cannot reach {urls[protocol]} .*\(gave up after 2 "):
                client.predict(SEED)
    finally:
        for client in clients.values():
            client.close()
    for protocol in ("grpc", "http"):
        with pytest.raises(ServerUnreachable, match="gave up after 2 attempts"):
            predict(None, protocol, "async", SEED, url=urls[protocol], **settings)
        result = run_client("--url", urls[protocol], "--protocol", protocol, "--retries", "1", SEED)
        assert_one_error_line(result, f"cannot reach {urls[protocol]}")


def test_a_server_killed_during_a_large_file_stops_the_command_with_one_line(own_server, big_file):
    own_server.start()
    process = subprocess.Popen([sys.executable, "-W", "error", "-m", "triton_ner.client", "--url", own_server.grpc_url,
                                "--file", str(big_file), "--batch-size", "8", "--concurrency", "2",
                                "--retries", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    own_server.process.kill()
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert stderr.startswith(f"client: error: cannot reach {own_server.grpc_url}") and stderr.count("\n") == 1
    lines = [first, *rest.splitlines()]
    assert 0 < len(lines) < 10_000 and all(isinstance(json.loads(line), list) for line in lines)


def _retries_outlasting(seconds: float, backoff: float) -> int:
    """The fewest retries whose back-off adds up to ``seconds`` even with every random factor at its least."""
    retries, waited = 0, 0.0
    while waited < seconds:
        waited += backoff_delay(retries, backoff, jitter=lambda: 0.0)
        retries += 1
    return retries


def test_unavailable_is_retried_until_the_server_comes_up(repository, tmp_path, caplog):
    own = tmp_path / "model_repository"
    shutil.copytree(repository, own)
    server = TritonServer(own, free_ports())
    # The clients keep trying for as long as the server may take to start, however busy the machine.
    settings = {"retries": _retries_outlasting(START_TIMEOUT, 0.25), "backoff": 0.25}

    async def both():
        # Both protocols wait at once, while the server starts in a thread of its own.
        sync_grpc = asyncio.to_thread(predict, server, "grpc", "sync", SEED, **settings)
        async_http = asyncio.to_thread(predict, server, "http", "async", SEED, **settings)
        return await asyncio.gather(sync_grpc, async_http)

    starter = threading.Thread(target=server.start)
    try:
        with caplog.at_level(logging.INFO, logger="triton_ner.client.library"):
            starter.start()
            results = asyncio.run(both())
    finally:
        starter.join()
        server.stop()
    assert [entities[0]["word"] for entities in results] == ["Wolfgang", "Wolfgang"]
    messages = [record.getMessage() for record in caplog.records]
    assert all("; retry " in message for message in messages)
    for url, name in ((server.grpc_url, "gRPC"), (server.http_url, "HTTP")):
        assert any(message.startswith(f"cannot reach {url} ({name})") for message in messages), messages


# TLS and restricted APIs.

@pytest.fixture(scope="module")
def tls_server(repository, certificates):
    """Triton with gRPC over mutual TLS, and inference restricted to requests with the header infer-key."""
    c = certificates
    with TritonServer(repository, free_ports(), extra_args=(
            "--grpc-use-ssl=true", f"--grpc-server-cert={c / 'server.crt'}", f"--grpc-server-key={c / 'server.key'}",
            f"--grpc-root-cert={c / 'ca.crt'}", "--grpc-use-ssl-mutual=true",
            "--grpc-restricted-protocol=inference:infer-key=secret",
            "--http-restricted-api=inference:infer-key=secret")) as server:
        yield server


def _mutual(certificates):
    return {"root_certificates": certificates / "ca.crt", "certificate_chain": certificates / "client.crt",
            "private_key": certificates / "client.key"}


GRPC_KEY = {"triton-grpc-protocol-infer-key": "secret"}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_mutual_tls_with_the_restricted_apis_key(tls_server, certificates, kind):
    entities = predict(tls_server, "grpc", kind, [SEED, "Siemens is in Munich"], headers=GRPC_KEY,
                       **_mutual(certificates))
    assert [[e["word"] for e in found] for found in entities] == [["Wolfgang", "Berlin"], ["Siemens", "Munich"]]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_tls_refusals_are_typed(tls_server, certificates, kind, caplog):
    mutual = _mutual(certificates)
    with pytest.raises(ServerUnreachable, match="cannot reach"):  # the server wants a client certificate
        predict(tls_server, "grpc", kind, SEED, headers=GRPC_KEY, root_certificates=mutual["root_certificates"],
                retries=0)
    with pytest.raises(ServerUnreachable, match="CERTIFICATE_VERIFY_FAILED"):  # a CA the system does not know
        predict(tls_server, "grpc", kind, SEED, headers=GRPC_KEY, retries=0,
                certificate_chain=mutual["certificate_chain"], private_key=mutual["private_key"])
    with pytest.raises(ServerUnreachable):  # TLS expected, plain text sent
        predict(tls_server, "grpc", kind, SEED, retries=0)
    with caplog.at_level(logging.INFO, logger="triton_ner.client.library"), pytest.raises(AccessDenied) as error:
        predict(tls_server, "grpc", kind, SEED, retries=3, **mutual)
    assert "expecting header 'triton-grpc-protocol-infer-key'" in str(error.value)
    assert caplog.records == []  # refused, not unavailable: no retry


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_headers_open_a_restricted_http_api(tls_server, kind):
    with pytest.raises(AccessDenied, match="expecting header 'infer-key'"):
        predict(tls_server, "http", kind, SEED)
    assert predict(tls_server, "http", kind, SEED, headers={"infer-key": "secret"})[0]["word"] == "Wolfgang"


def test_command_over_mutual_tls(tls_server, certificates):
    c = certificates
    tls = ["--url", tls_server.grpc_url, "--root-cert", c / "ca.crt", "--client-cert", c / "client.crt",
           "--client-key", c / "client.key"]
    result = run_client(*tls, "-H", "triton-grpc-protocol-infer-key: secret", SEED)
    assert result.returncode == 0, result.stderr
    assert [e["word"] for e in json.loads(result.stdout)] == ["Wolfgang", "Berlin"]
    refused = run_client(*tls, SEED)
    assert_one_error_line(refused, f"{tls_server.grpc_url} (gRPC) refused the request: This protocol is restricted")
    untrusted = run_client("--url", tls_server.grpc_url, "--ssl", "--retries", "0", SEED)
    assert_one_error_line(untrusted, f"cannot reach {tls_server.grpc_url}")


# The command line.

@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_ten_thousand_jsonl_lines_round_trip_in_order(triton, big_file, big_file_entities, protocol):
    result = run_client("--url", _url(triton, protocol), "--protocol", protocol, "--file", big_file, "--progress",
                        timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 10_000
    for i, (line, want) in enumerate(zip(lines, big_file_entities, strict=True)):
        assert_same(json.loads(line), want, f"line {i + 1}")
    assert result.stderr.startswith("client: 10,000 texts, ") and result.stderr.count("\n") == 1


def test_texts_from_arguments_files_and_stdin_in_order(triton, tmp_path):
    (tmp_path / "a.txt").write_text("Siemens is in Munich\n\nAngela Merkel visited Paris\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "Wolfgang works for Siemens", "id": 7}) + "\n")
    result = run_client("--url", triton.grpc_url, "--batch-size", "2", "-f", tmp_path / "a.txt", "-f", "-",
                        "-f", tmp_path / "b.jsonl", "Berlin", stdin="I live in Berlin\n")
    assert result.returncode == 0, result.stderr
    texts = ["Berlin", "Siemens is in Munich", "", "Angela Merkel visited Paris", "I live in Berlin",
             "Wolfgang works for Siemens"]
    got = [json.loads(line) for line in result.stdout.splitlines()]
    with NerClient(triton.grpc_url) as client:
        want = client.predict(texts)
    assert len(got) == len(texts)
    for g, w in zip(got, want, strict=True):
        assert_same(g, w)


def test_options_of_the_command_reach_the_server(triton):
    result = run_client("--url", triton.http_url, "--protocol", "http", "--strategy", "none",
                        "--ignore-labels", "", SEED)
    assert result.returncode == 0, result.stderr
    entities = json.loads(result.stdout)
    assert {"entity", "index"} <= set(entities[0]) and "O" in {e["entity"] for e in entities}


def test_pretty_view_highlights_entities(triton):
    result = run_client("--url", triton.grpc_url, "--output", "pretty", SEED)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "My name is Wolfgang[PER] and I live in Berlin[LOC]\n"


def test_a_bad_input_line_is_one_error_line(triton, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Berlin"}\n{"text": \n')
    result = run_client("--url", triton.grpc_url, "-f", bad)
    assert_one_error_line(result, f"{bad}:2: not JSON")
    assert result.stdout == ""  # the first batch was not complete


def test_ctrl_c_stops_cleanly(triton, big_file):
    process = subprocess.Popen([sys.executable, "-W", "error", "-m", "triton_ner.client", "--url", triton.grpc_url,
                                "--file", str(big_file), "--batch-size", "8", "--concurrency", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == "client: interrupted\n"
    lines = [first, *rest.splitlines()]
    assert len(lines) < 10_000 and all(isinstance(json.loads(line), list) for line in lines)


def test_help_is_enough_to_use_it():
    result = run_client("--help")
    assert result.returncode == 0
    for option in ("--file", "--url", "--protocol", "--strategy", "--concurrency", "--batch-size", "--timeout",
                   "--root-cert", "--client-cert", "--client-key", "--header", "--output", "--progress"):
        assert option in result.stdout


def test_typed_errors_are_client_errors():
    assert all(issubclass(kind, ClientError) for kind in (ServerUnreachable, ModelNotReady, InvalidArgument,
                                                          DeadlineExceeded, AccessDenied))


# The command line's order, read against the input alone.

@pytest.fixture(scope="module")
def indexed_file(tmp_path_factory):
    """10,000 JSON lines whose text ``i`` begins with ``i``: the order of the output is read from the output."""
    path = tmp_path_factory.mktemp("client-indexed") / "texts.jsonl"
    with path.open("w") as file:
        for i, text in enumerate(corpus.texts(10_000, seed=11)):
            file.write(json.dumps({"text": f"{i} {text}"}) + "\n")
    return path


def _leading_number(tokens: list[dict]) -> str:
    """The number a text begins with, from its tokens (strategy "none", no label left out): the word pieces from
    offset 0 up to the first gap."""
    number, end = "", 0
    for token in tokens:
        if token["start"] != end:
            break
        number, end = number + token["word"].removeprefix("##"), token["end"]
    return number


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_ten_thousand_lines_come_out_in_the_input_order_by_the_index_each_text_holds(triton, indexed_file,
                                                                                     protocol):
    result = run_client("--url", _url(triton, protocol), "--protocol", protocol, "--file", indexed_file,
                        "--strategy", "none", "--ignore-labels", "", "--batch-size", "16", "--concurrency", "8",
                        timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 10_000
    found = [_leading_number(json.loads(line)) for line in lines]
    misplaced = [(i, number) for i, number in enumerate(found) if number != str(i)]
    assert not misplaced, (f"{len(misplaced):,} lines out of place; line {misplaced[0][0] + 1} holds the answer of "
                           f"the text that begins with {misplaced[0][1]!r}")

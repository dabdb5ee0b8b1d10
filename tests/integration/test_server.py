"""The served ensemble on a real Triton: entities, parity with the pipeline, and refusals that leave it up."""

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.parity import assert_same
from triton_ner.client import ClientError, NerClient
from triton_ner.core import names
from triton_ner.core.errors import ServerError
from triton_ner.export.configs import repository_configs
from triton_ner.server.arguments import Ports, free_ports
from triton_ner.server.launcher import TritonServer

SEED = "My name is Wolfgang and I live in Berlin"


@pytest.fixture(params=["grpc", "http"])
def client(request, triton):
    url = triton.grpc_url if request.param == "grpc" else triton.http_url
    with NerClient(url, request.param) as c:
        yield c


def test_seed_sentence_gives_wolfgang_and_berlin(client):
    entities = client.predict(SEED)
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in entities] == [
        ("PER", "Wolfgang", 11, 19), ("LOC", "Berlin", 34, 40)]


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_served_entities_equal_the_pipeline(strategy, client, parity_texts, pipelines):
    assert len(parity_texts) >= 50
    pipe = pipelines(strategy)
    served = []
    for start in range(0, len(parity_texts), 16):  # several texts per request, of different lengths
        served += client.predict(parity_texts[start:start + 16], aggregation_strategy=strategy)
    for text, got in zip(parity_texts, served, strict=True):
        assert_same(got, pipe(text))


def test_empty_and_whitespace_texts_give_no_entities(client):
    assert client.predict(["", "  \n\t", SEED])[:2] == [[], []]


def test_invalid_strategy_is_invalid_argument_and_server_stays_up(triton):
    with NerClient(triton.grpc_url) as client:
        with pytest.raises(ClientError, match="aggregation_strategy 'bogus' is not one of"):
            client.predict(SEED, aggregation_strategy="bogus")
        assert client.predict(SEED)[0]["word"] == "Wolfgang"
    raw = grpcclient.InferenceServerClient(triton.grpc_url)
    with pytest.raises(InferenceServerException) as error:
        raw.infer(names.ENSEMBLE, [_text_input(grpcclient, [SEED.encode()])],
                  parameters={"aggregation_strategy": "bogus"})
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    raw.close()


def _text_input(module, values):
    tensor = module.InferInput(names.TEXT, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
    return tensor


def test_text_that_is_not_utf8_is_invalid_argument_over_http(triton):
    client = httpclient.InferenceServerClient(triton.http_url)
    with pytest.raises(InferenceServerException) as error:
        client.infer(names.ENSEMBLE, [_text_input(httpclient, [b"ok", b"\xff\xfe broken"])])
    assert error.value.status() == "400"
    assert "TEXT[1] is not valid UTF-8" in error.value.message()
    result = client.infer(names.ENSEMBLE, [_text_input(httpclient, [SEED.encode()])])
    assert json.loads(result.as_numpy(names.ENTITIES)[0])[0]["word"] == "Wolfgang"
    client.close()


def test_too_many_texts_are_refused_with_the_limit(triton):
    with NerClient(triton.grpc_url) as client, pytest.raises(ClientError, match="the most per request is 1024"):
        client.predict(["Berlin"] * 1025)


def test_busy_port_is_one_clear_error(triton, repository):
    ports = free_ports()
    with pytest.raises(ServerError, match=f"the grpc port {triton.ports.grpc} is already in use"):
        TritonServer(repository, Ports(ports.http, triton.ports.grpc, ports.metrics)).start()


@pytest.mark.parametrize(("parameters", "message"), [
    ({"stride": "abc"}, "stride 'abc' must be a whole number of tokens, 0 or more"),
    ({"stride": 600}, "stride 600 must be at least 0 and less than 510"),
    ({"ignore_labels": "[O"}, "ignore_labels '[O' is not a JSON list of strings"),
    ({"aggregation_strategy": "none"}, "TEXT[1] is longer than the model's 512 tokens and aggregation_strategy "
                                       "'none' cannot combine windows"),
])
def test_bad_parameters_are_invalid_argument(triton, parameters, message):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    with pytest.raises(InferenceServerException) as error:
        client.infer(names.ENSEMBLE, [_text_input(grpcclient, [SEED.encode(), ("Berlin " * 600).encode()])],
                     parameters=parameters)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in error.value.message()
    client.close()


def test_text_over_the_size_limit_is_invalid_argument(triton):
    limit = repository_configs()[f"{names.TEXT_STEP}/config.pbtxt"].parameters["max_text_bytes"].string_value
    too_big = "Berlin " * (int(limit) // 7 + 1)
    with NerClient(triton.grpc_url) as client:
        with pytest.raises(ClientError, match=f"TEXT\\[1\\] is {len(too_big):,} bytes; the most per text is "
                                              f"{int(limit):,} bytes"):
            client.predict([SEED, too_big])
        assert client.predict(SEED)[1]["word"] == "Berlin"


def test_a_long_document_is_covered_whole(triton):
    text = " ".join(["Wolfgang lives in Berlin ."] * 2000)  # 10,000 tokens, 27 windows
    with NerClient(triton.grpc_url) as client:
        entities = client.predict(text)
    assert [e["word"] for e in entities] == ["Wolfgang", "Berlin"] * 2000
    assert entities[-1]["end"] == len(text) - 2


def test_client_passes_stride(triton, pipelines):
    text = " ".join(["Angela Merkel met Wolfgang in Berlin ."] * 150)
    with NerClient(triton.grpc_url) as client:
        assert_same(client.predict(text, aggregation_strategy="first", stride=32),
                    pipelines("first")(text, stride=32))

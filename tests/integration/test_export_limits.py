"""``ner-export``'s serving limits end to end: a repository exported by the command with small limits is served by
Triton, which refuses a request over each limit with ``INVALID_ARGUMENT`` naming it, and runs the queues and the
model-step processes the command asked for."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.parity import assert_same, text_with_tokens
from triton_ner.client import NerClient
from triton_ner.core import names

MAX_TEXT_BYTES, MAX_WINDOWS, MAX_TOKENS = 5000, 3, 1000
OPTIONS = {"--max-text-bytes": MAX_TEXT_BYTES, "--max-batch-size": MAX_WINDOWS, "--max-tokens-per-request": MAX_TOKENS,
           "--max-queue-size": 7, "--text-queue-size": 5, "--queue-timeout": 4, "--cpu-instances": 1}


@pytest.fixture(scope="module")
def limited(checkpoint, tmp_path_factory):
    """A server of the fixture model exported by ``python -m triton_ner.export`` with :data:`OPTIONS`."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    repository = tmp_path_factory.mktemp("export-limits") / "model_repository"
    options = [str(part) for option, value in OPTIONS.items() for part in (option, value)]
    subprocess.run([sys.executable, "-m", "triton_ner.export", "--model", str(checkpoint), "--output", str(repository),
                    "--target", "cpu", "--no-optimize", *options], check=True, capture_output=True, timeout=600)
    with TritonServer(repository, free_ports()) as server:
        yield server


def _refusal(url: str, texts: list[str]) -> str:
    """The server's message refusing a gRPC request of ``texts``, which must be ``INVALID_ARGUMENT``."""
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(names.TEXT, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    try:
        with pytest.raises(InferenceServerException) as caught:
            client.infer(names.ENSEMBLE, [tensor])
    finally:
        client.close()
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT", caught.value
    return caught.value.message()


def test_requests_over_the_limits_set_by_ner_export_are_refused_naming_them(limited, checkpoint, pipelines):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    at_limit = [text_with_tokens(tokenizer, 510, seed=1), text_with_tokens(tokenizer, 486, seed=2)]  # 512 + 488
    with NerClient(limited.grpc_url) as client:
        for text, got in zip(at_limit, client.predict(at_limit), strict=True):
            assert_same(got, pipelines("simple")(text))
    assert (f"the texts need {MAX_TOKENS + 1:,} tokens in 2 windows; the most per request is {MAX_TOKENS:,} tokens"
            in _refusal(limited.grpc_url, [at_limit[0], at_limit[1] + " the"]))
    assert (f"the texts need {MAX_WINDOWS + 1} windows of 512 tokens; the most per request is {MAX_WINDOWS}"
            in _refusal(limited.grpc_url, ["Berlin"] * (MAX_WINDOWS + 1)))
    assert (f"TEXT[1] is {MAX_TEXT_BYTES + 1:,} bytes; the most per text is {MAX_TEXT_BYTES:,} bytes"
            in _refusal(limited.grpc_url, ["Berlin", "x" * (MAX_TEXT_BYTES + 1)]))
    with NerClient(limited.grpc_url) as client:  # still serving
        assert_same(client.predict(["I live in Berlin"])[0], pipelines("simple")("I live in Berlin"))


def test_triton_runs_the_queues_and_processes_set_by_ner_export(limited):
    from triton_ner_loadtest.soak import process_names

    client = grpcclient.InferenceServerClient(limited.grpc_url)
    try:
        model = client.get_model_config(names.MODEL).config
        tokenizer = client.get_model_config(names.TEXT_STEP).config
    finally:
        client.close()
    assert model.max_batch_size == MAX_WINDOWS
    assert model.dynamic_batching.default_queue_policy.max_queue_size == OPTIONS["--max-queue-size"]
    assert model.dynamic_batching.default_queue_policy.default_timeout_microseconds == 4_000_000
    assert tokenizer.dynamic_batching.default_queue_policy.max_queue_size == OPTIONS["--text-queue-size"]
    assert tokenizer.parameters["max_tokens_per_request"].string_value == str(MAX_TOKENS)
    stubs = [name for name in process_names(limited.process.pid).values() if name.startswith(f"{names.MODEL} (")]
    assert len(stubs) == OPTIONS["--cpu-instances"]  # one model-step process, not the default two

"""One request's cost: bounded in tokens as well as windows (configurable, with a clear refusal); a request past
its timeout or cancelled stops between model runs; a short request is answered while a maximal one runs.

The last two need the full-size model (``--model benchmark``, random weights), exported once into a temporary
folder: on the fixture model every run is too quick to tell one from many. Run with ``-s`` for the figures.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.parity import assert_same, text_with_tokens
from tests.polling import wait_for
from triton_ner.client import InvalidArgument, NerClient
from triton_ner.core import names
from triton_ner.export.configs import ServingOptions
from triton_ner_loadtest.overload import heavy, window_texts

LIMIT = ServingOptions().max_tokens_per_request
SHORT_BOUND_S = 5.0  # the stated bound for a short request sent while a maximal one runs
HEAVY_TIMEOUT_S = 15.0


def _tokenizer(checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


def test_a_request_at_the_default_token_limit_is_answered_and_one_more_token_is_refused(triton, checkpoint,
                                                                                        pipelines):
    tokenizer = _tokenizer(checkpoint)
    windows = LIMIT // tokenizer.model_max_length
    texts = [text_with_tokens(tokenizer, tokenizer.model_max_length - 2, seed=i) for i in range(windows)]
    pipe = pipelines("simple")
    with NerClient(triton.grpc_url, timeout=300) as client:
        answers = client.predict(texts)  # 128 windows of 512 tokens: exactly the limit
        for text, got in zip(texts[:8], answers[:8], strict=True):
            assert_same(got, pipe(text))
        # One more text, "the": a window of 3 tokens ([CLS] the [SEP]).
        with pytest.raises(InvalidArgument, match=rf"the texts need {LIMIT + 3:,} tokens in {windows + 1} windows; "
                                                  rf"the most per request is {LIMIT:,} tokens: send fewer"):
            client.predict([*texts, "the"])


@pytest.fixture(scope="module")
def limited(checkpoint_of, tmp_path_factory):
    """A fixture-model server exported with a limit of 1,000 tokens per request."""
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    repository = tmp_path_factory.mktemp("limited") / "model_repository"
    build(Checkpoint(checkpoint_of("conll"), "fixture conll"), repository,
          ExportPlan(options=ServingOptions(max_tokens_per_request=1000)), log=lambda _: None)
    with TritonServer(repository, free_ports()) as server:
        yield server


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_token_limit_is_a_configuration_parameter(protocol, limited, checkpoint, pipelines):
    tokenizer = _tokenizer(checkpoint)
    texts = [text_with_tokens(tokenizer, 510, seed=1), text_with_tokens(tokenizer, 486, seed=2)]  # 512 + 488
    url = limited.grpc_url if protocol == "grpc" else limited.http_url
    with NerClient(url, protocol) as client:
        for text, got in zip(texts, client.predict(texts), strict=True):
            assert_same(got, pipelines("simple")(text))
        with pytest.raises(InvalidArgument, match=r"the texts need 1,001 tokens in 2 windows; the most per request "
                                                  r"is 1,000 tokens"):
            client.predict([texts[0], texts[1] + " the"])


@pytest.fixture(scope="module")
def full_size(checkpoint_of, tmp_path_factory):
    """A server of the full-size benchmark model in its default configuration, and its tokenizer."""
    from triton_ner.export.assemble import build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    repository = tmp_path_factory.mktemp("full-size") / "model_repository"
    build(Checkpoint(checkpoint_of("benchmark"), "benchmark"), repository, log=lambda _: None)
    with TritonServer(repository, free_ports()) as server:
        yield server, _tokenizer(checkpoint_of("benchmark"))


@pytest.mark.slow
def test_a_short_request_is_answered_while_a_maximal_one_runs_and_the_maximal_one_stops_at_its_timeout(
        full_size, capsys):
    server, tokenizer = full_size
    windows = LIMIT // tokenizer.model_max_length
    figures = heavy(server.grpc_url, window_texts(tokenizer, windows), windows * tokenizer.model_max_length,
                    HEAVY_TIMEOUT_S)
    with capsys.disabled():
        print("\n" + "\n".join(figures.lines()) + f"\n  stated bound for the short request: {SHORT_BOUND_S:g} s")
    assert max(figures.short_during_s) < SHORT_BOUND_S
    assert figures.heavy_status == "CANCELLED", figures.heavy_message
    assert f"the request's timeout of {HEAVY_TIMEOUT_S:g} s passed before all its windows ran" in figures.heavy_message
    # It stops at the first run boundary after its timeout: 4 runs of 32 windows would take 4 times as long.
    assert HEAVY_TIMEOUT_S <= figures.heavy_s < HEAVY_TIMEOUT_S + 90


def _model_request(client, rows: int, length: int, callback=None):
    ids = np.full((rows, length), 1000, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    tensors = [grpcclient.InferInput(name, [rows, length], "INT64") for name in (names.INPUT_IDS,
                                                                                 names.ATTENTION_MASK)]
    tensors[0].set_data_from_numpy(ids)
    tensors[1].set_data_from_numpy(np.ones_like(ids))
    if callback is None:
        return client.infer(names.MODEL, tensors)
    return client.async_infer(names.MODEL, tensors, callback)


def _executions(client) -> tuple[int, float]:
    """Executions of the model step so far, and their total compute time in seconds."""
    stats = client.get_inference_statistics(names.MODEL).model_stats[0]
    return stats.execution_count, stats.inference_stats.compute_infer.ns / 1e9


@pytest.mark.slow
def test_a_cancelled_request_stops_between_model_runs(full_size, capsys):
    server, _ = full_size
    client = grpcclient.InferenceServerClient(server.grpc_url)
    count, compute = _executions(client)
    _model_request(client, 32, 512)  # 16,384 tokens: one run of the model step
    # The backend reports an execution's statistics after its responses are sent.
    wait_for(lambda: _executions(client)[0] > count, timeout=10, every=0.1)
    count_one, compute_one = _executions(client)
    one_run = compute_one - compute
    assert count_one == count + 1
    errors = []
    call = _model_request(client, 96, 512, lambda result, error: errors.append(error))  # three runs
    time.sleep(1.0)
    call.cancel()
    deadline = time.monotonic() + 10 * one_run + 60
    while _executions(client)[0] == count_one and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped_after = _executions(client)[1] - compute_one
    client.close()
    with capsys.disabled():
        print(f"\ncancellation: one run of 32 windows of 512 tokens took {one_run:.1f} s; a request of three runs, "
              f"cancelled after 1 s, stopped after {stopped_after:.1f} s")
    assert errors and isinstance(errors[0], InferenceServerException)
    assert "CANCELLED" in str(errors[0].status())
    assert stopped_after < 2 * one_run  # it ran one run of its three

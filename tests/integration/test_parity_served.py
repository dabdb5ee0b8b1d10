"""The parity checks through the served ensemble over gRPC: both checkpoints, every strategy, all the cases."""

import pytest

from tests.parity import HARD_CASES, STRATEGIES, assert_same, expected, long_cases
from triton_ner.client import NerClient
from triton_ner.core.tokenization import DEFAULT_STRIDE, count_windows
from triton_ner.core.vocabulary import load_vocabulary


@pytest.fixture(scope="module", params=["conll", "plain"])
def label_set(request):
    return request.param


@pytest.fixture(scope="module")
def cases(label_set, checkpoint_of, parity_texts):
    tokenizer = load_vocabulary(checkpoint_of(label_set)).tokenizer
    named = {f"generated_{i}": t for i, t in enumerate(parity_texts)} | HARD_CASES | long_cases(tokenizer)
    windows = count_windows(tokenizer, list(named.values()), DEFAULT_STRIDE)
    return [(name, text, count) for (name, text), count in zip(named.items(), windows, strict=True)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_served_entities_equal_the_pipeline(strategy, label_set, cases, server_of, pipeline_of):
    pipe = pipeline_of(label_set, strategy)
    # `none` cannot combine windows (the pipeline refuses stride with it; the server refuses long texts).
    checked = [case for case in cases if strategy != "none" or case[2] == 1]
    with NerClient(server_of(label_set).grpc_url) as client:
        served = []
        for start in range(0, len(checked), 7):  # several texts of different lengths per request
            served += client.predict([text for _, text, _ in checked[start:start + 7]],
                                     aggregation_strategy=strategy)
    assert len(served) == len(checked) >= 77
    for (name, text, windows), got in zip(checked, served, strict=True):
        assert_same(got, expected(pipe, text, strategy, windows), name)

"""The pure tokenization and aggregation against the real transformers pipeline, fed PyTorch logits.

Both checkpoints (two label sets), every strategy, generated sentences, hand-written hard cases and texts at
and past the 512-token window.
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.parity import HARD_CASES, STRATEGIES, assert_same, expected, long_cases, text_with_tokens
from triton_ner.core.aggregation import _group_scores, aggregate_texts, softmax, to_python
from triton_ner.core.parameters import Strategy
from triton_ner.core.tokenization import DEFAULT_STRIDE, count_windows, encode
from triton_ner.core.vocabulary import load_vocabulary


@pytest.fixture(scope="module", params=["conll", "plain"])
def label_set(request):
    return request.param


@pytest.fixture(scope="module")
def vocab(checkpoint_of, label_set):
    return load_vocabulary(checkpoint_of(label_set))


@pytest.fixture(scope="module")
def model(pipeline_of, label_set):
    return pipeline_of(label_set).model


def ours(texts, vocab, model, strategy, ignore_labels=("O",), stride=DEFAULT_STRIDE):
    """Our aggregation on the PyTorch logits of ``texts`` tokenized together (padded windows)."""
    batch = encode(vocab.tokenizer, texts, stride)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(batch.input_ids),
                       attention_mask=torch.from_numpy(batch.attention_mask)).logits.numpy()
    results = aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                              batch.text_index, vocab, Strategy(strategy), ignore_labels)
    return [to_python(entities) for entities in results]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_generated_sentences(strategy, label_set, parity_texts, vocab, model, pipeline_of):
    pipe = pipeline_of(label_set, strategy)
    for text, got in zip(parity_texts, ours(parity_texts, vocab, model, strategy), strict=True):
        assert_same(got, pipe(text), text)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hard_cases(strategy, label_set, vocab, model, pipeline_of):
    pipe = pipeline_of(label_set, strategy)
    texts = list(HARD_CASES.values())
    for name, got in zip(HARD_CASES, ours(texts, vocab, model, strategy), strict=True):
        assert_same(got, pipe(HARD_CASES[name]), name)


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "none"])
def test_long_texts_equal_the_pipeline_with_the_same_stride(strategy, label_set, vocab, model, pipeline_of):
    pipe = pipeline_of(label_set, strategy)
    cases = long_cases(vocab.tokenizer)
    windows = count_windows(vocab.tokenizer, list(cases.values()), DEFAULT_STRIDE)
    assert windows[:3] == [1, 2, 2] and windows[-1] > 10
    found = ours(list(cases.values()), vocab, model, strategy)
    for (name, text), count, got in zip(cases.items(), windows, found, strict=True):
        assert_same(got, expected(pipe, text, strategy, count), name)


def test_other_strides_equal_the_pipeline(label_set, vocab, model, pipeline_of):
    pipe = pipeline_of(label_set, "first")
    for stride, tokens in ((0, 1500), (16, 1500), (255, 1500), (400, 1500), (509, 520)):
        text = text_with_tokens(vocab.tokenizer, tokens, seed=stride)
        assert_same(ours([text], vocab, model, "first", stride=stride)[0], pipe(text, stride=stride), stride)


def test_a_short_text_with_stride_is_the_pipeline_without_stride(pipeline_of, label_set):
    pipe = pipeline_of(label_set, "simple")
    text = "My name is Wolfgang and I live in Berlin"
    assert_same([to_python([e])[0] for e in pipe(text, stride=DEFAULT_STRIDE)], pipe(text))


@pytest.mark.parametrize("ignore", [(), ("O", "PER"), ("LOC", "B-LOC", "I-LOC")])
def test_ignore_labels(ignore, label_set, vocab, model, pipeline_of):
    text = "My name is Wolfgang and I live in Berlin"
    for strategy in ("none", "simple"):
        assert_same(ours([text], vocab, model, strategy, ignore_labels=ignore)[0],
                    pipeline_of(label_set, strategy)(text, ignore_labels=list(ignore)), strategy)


def test_softmax_rows_sum_to_one():
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0], [0.5, 0.5, 0.5]], dtype=np.float32))
    assert np.allclose(probabilities.sum(axis=-1), 1.0)
    assert probabilities[0, 0] == 1.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1, width=32) | st.just(float("nan")), min_size=1, max_size=20)
                .filter(lambda run: not all(np.isnan(run))), min_size=1, max_size=12))
def test_group_scores_are_the_pipelines_mean_to_the_bit(runs):
    """A group's score is ``np.mean(np.nanmean(scores))`` as the pipeline computes it, for runs shorter and longer
    than numpy's pairwise-summation block and with NaN scores left out."""
    scores = np.array([s for run in runs for s in run], dtype=np.float32)
    first = np.cumsum([0, *map(len, runs)])[:-1]
    found = _group_scores(scores, first, first + np.array([len(run) for run in runs]))
    pipeline = [np.mean(np.nanmean([np.float32(s) for s in run])) for run in runs]
    assert found.tobytes() == np.array(pipeline, dtype=np.float32).tobytes()


def test_entities_json_is_the_same_with_and_without_orjson(monkeypatch):
    from triton_ner.core import aggregation

    entities = [{"entity_group": "PER", "score": np.float32(0.98787946), "word": "Jürgen 東京 🎉", "start": 0,
                 "end": 13}, {"entity": "B-LOC", "score": np.float32(1e-7), "index": 3, "word": "x", "start": 14,
                              "end": 15}]
    fast = aggregation.to_json(entities)
    monkeypatch.setattr(aggregation, "orjson", None)
    plain = aggregation.to_json(entities)
    assert json.loads(fast) == json.loads(plain) == to_python(entities)
    assert "Jürgen 東京 🎉".encode() in fast and "Jürgen 東京 🎉".encode() in plain  # UTF-8, not \\u escapes

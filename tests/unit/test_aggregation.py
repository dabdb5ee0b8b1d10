"""The pure aggregation against the real transformers pipeline, fed the same logits."""

import numpy as np
import pytest
import torch

from ner.aggregation import Strategy, aggregate_texts, softmax, to_python
from ner.tokenization import encode, load_vocabulary

STRATEGIES = [s.value for s in Strategy]


@pytest.fixture(scope="module")
def vocab(checkpoint):
    return load_vocabulary(checkpoint)


@pytest.fixture(scope="module")
def model(pipelines):
    return pipelines().model


def ours(texts, vocab, model, strategy, ignore_labels=("O",)):
    """Our aggregation on the PyTorch logits of ``texts`` tokenized together (padded batch)."""
    batch = encode(vocab.tokenizer, texts)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(batch.input_ids),
                       attention_mask=torch.from_numpy(batch.attention_mask)).logits.numpy()
    results = aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                              batch.text_index, vocab, Strategy(strategy), ignore_labels)
    return [to_python(entities) for entities in results]


def assert_same(got, want):
    """Same entities in the same order; scores equal to float32 rounding (padding changes the last bits)."""
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert {k: v for k, v in g.items() if k != "score"} == {k: v for k, v in w.items() if k != "score"}
        assert g["score"] == pytest.approx(float(w["score"]), abs=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_matches_pipeline_on_generated_sentences(strategy, parity_texts, vocab, model, pipelines):
    pipe = pipelines(strategy)
    for text, got in zip(parity_texts, ours(parity_texts, vocab, model, strategy)):
        assert_same(got, pipe(text))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_matches_pipeline_on_hard_cases(strategy, vocab, model, pipelines):
    texts = [
        "Zoltan Krzyzanowski flew from Ouagadougou to Reykjavik.",  # names split into many pieces
        "Jürgen Müller and José met Chloé in Zürich 🎉 today.",  # accents, an [UNK] emoji
        "Siobhan O'Brien-Smith-Jones\tjoined  Siemens\n in   Kraków!!!",  # tabs, newlines, runs of spaces
        "BERLIN , PARIS and TOKYO",
        "",
        "   ",
    ]
    pipe = pipelines(strategy)
    for text, got in zip(texts, ours(texts, vocab, model, strategy)):
        assert_same(got, pipe(text))


def test_ignore_labels_none_keeps_o(vocab, model, pipelines):
    text = "My name is Wolfgang and I live in Berlin"
    assert_same(ours([text], vocab, model, "simple", ignore_labels=())[0], pipelines()(text, ignore_labels=[]))


def test_empty_text_has_no_entities(vocab, model):
    assert ours(["", " \t\n "], vocab, model, "simple") == [[], []]


def test_softmax_rows_sum_to_one():
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0], [0.5, 0.5, 0.5]], dtype=np.float32))
    assert np.allclose(probabilities.sum(axis=-1), 1.0)
    assert probabilities[0, 0] == 1.0

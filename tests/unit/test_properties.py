"""Invariants of tokenization and aggregation for any text (hypothesis), with logits that depend only on the
token and its position in its window, as a real model's do."""

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triton_ner.core.aggregation import aggregate_texts
from triton_ner.core.parameters import Strategy
from triton_ner.core.tokenization import check_stride, encode, window_tokens
from triton_ner.core.vocabulary import load_vocabulary

# Any code point but lone surrogates (not encodable); weighted towards what the tokenizer splits on.
ANY_CHAR = st.characters(exclude_categories=("Cs",))
PIECE = st.one_of(st.text(ANY_CHAR, max_size=3), st.sampled_from([" ", "\t", "\n", ".", ",", "-", "'", "Berlin",
                                                                  "Wolfgang ", "Siemens ", "Krzyzanowski"]))
TEXT = st.lists(PIECE, max_size=30).map("".join)
STRATEGY = st.sampled_from(list(Strategy))


@pytest.fixture(scope="module", params=["model_max_length=512", "model_max_length=24"])
def vocab(checkpoint, request):
    vocab = load_vocabulary(checkpoint)
    # A short window makes short texts span several windows, so the stride logic is exercised too.
    vocab.tokenizer.model_max_length = int(request.param.split("=")[1])
    return vocab


def fake_logits(input_ids: np.ndarray, labels: int) -> np.ndarray:
    """Deterministic logits of (token id, position in window), the same in any batch or padding."""
    positions = np.arange(input_ids.shape[1])[None, :, None]
    raw = np.sin(input_ids[..., None] * 12.9898 + positions * 78.233 + np.arange(labels) * 37.719) * 43758.5453
    return ((raw - np.floor(raw)) * 8).astype(np.float32)


def run(vocab, texts, strategy, stride=4, ignore_labels=("O",)):
    check_stride(vocab.tokenizer, stride)
    batch = encode(vocab.tokenizer, texts, stride)
    logits = fake_logits(batch.input_ids, len(vocab.id2label))
    return batch, aggregate_texts(texts, batch.input_ids, batch.offsets, batch.special_tokens_mask, logits,
                                  batch.text_index, vocab, strategy, ignore_labels)


def strategies_for(vocab):
    # The pipeline refuses `none` with several windows; the server does too, so only test it on one window.
    return [s for s in Strategy if s is not Strategy.NONE or vocab.tokenizer.model_max_length == 512]


@settings(max_examples=150, deadline=None)
@given(text=TEXT, strategy=STRATEGY, stride=st.integers(0, 20))
def test_spans_lie_in_the_text_sorted_and_disjoint(vocab, text, strategy, stride):
    if strategy not in strategies_for(vocab):
        strategy = Strategy.SIMPLE
    stride = min(stride, window_tokens(vocab.tokenizer) - 1)
    _, (entities,) = run(vocab, [text], strategy, stride, ignore_labels=())
    for entity in entities:
        assert 0 <= entity["start"] <= entity["end"] <= len(text)
    for before, after in itertools.pairwise(entities):
        assert before["end"] <= after["start"]


# `none` only on one window (the pipeline and the server refuse it across windows): the full-length window alone.
@pytest.mark.parametrize("vocab", ["model_max_length=512"], indirect=True)
@settings(max_examples=100, deadline=None)
@given(text=TEXT)
def test_none_gives_one_record_per_real_token(vocab, text):
    batch, (records,) = run(vocab, [text], Strategy.NONE, ignore_labels=())
    assert len(records) == int((batch.special_tokens_mask[0] == 0).sum())
    assert [r["index"] for r in records] == sorted(r["index"] for r in records)


@settings(max_examples=100, deadline=None)
@given(text=TEXT, others=st.lists(TEXT, max_size=3), strategy=STRATEGY)
def test_a_text_gets_the_same_entities_alone_and_in_any_batch(vocab, text, others, strategy):
    if strategy not in strategies_for(vocab):
        strategy = Strategy.SIMPLE
    _, (alone,) = run(vocab, [text], strategy)
    _, together = run(vocab, [*others, text, "padding " * 40], strategy)
    assert together[len(others)] == alone


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=4), stride=st.integers(0, 20))
def test_window_counts_are_exact_and_the_cheap_bound_holds(vocab, texts, stride):
    from triton_ner.core.tokenization import count_windows, most_windows

    stride = min(stride, window_tokens(vocab.tokenizer) - 1)
    counts = count_windows(vocab.tokenizer, texts, stride)
    assert counts == np.bincount(encode(vocab.tokenizer, texts, stride).text_index, minlength=len(texts)).tolist()
    assert sum(counts) <= most_windows(vocab.tokenizer, texts, stride)


def test_prepare_refuses_more_windows_than_a_batch_and_none_across_windows(vocab):
    from triton_ner.core.errors import InvalidInput
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.tokenization import prepare

    text = "Wolfgang lives in Berlin . " * 200  # 1,000 tokens
    windows = len(encode(vocab.tokenizer, [text], 4).text_index)
    with pytest.raises(InvalidInput, match=f"the texts need {windows} windows"):
        prepare(vocab.tokenizer, [text], RequestOptions(stride=4), max_windows=windows - 1)
    assert len(prepare(vocab.tokenizer, [text], RequestOptions(stride=4), max_windows=windows).text_index) == windows
    with pytest.raises(InvalidInput, match="TEXT\\[1\\] is longer than the model's"):
        prepare(vocab.tokenizer, ["Berlin", text], RequestOptions(Strategy.NONE, stride=4), max_windows=10**6)


@settings(max_examples=40, deadline=None)
@given(requests=st.lists(st.tuples(st.lists(TEXT, max_size=3), STRATEGY, st.sampled_from([None, 2, 4])),
                         min_size=1, max_size=5))
def test_requests_prepared_and_aggregated_together_equal_each_alone(vocab, requests):
    """The text step's batching changes no request's windows, entities or refusal."""
    from triton_ner.core.aggregation import Windows, aggregate_requests
    from triton_ner.core.errors import InvalidInput
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.tokenization import prepare, prepare_requests

    asked = [(texts, RequestOptions(strategy, stride=stride)) for texts, strategy, stride in requests]
    together = prepare_requests(vocab.tokenizer, asked, max_windows=12, max_tokens=200)
    for (texts, options), batch in zip(asked, together, strict=True):
        try:
            alone = prepare(vocab.tokenizer, texts, options, max_windows=12, max_tokens=200)
        except InvalidInput as error:
            assert isinstance(batch, InvalidInput) and str(batch) == str(error)
            continue
        for field in ("input_ids", "attention_mask", "offsets", "special_tokens_mask", "text_index"):
            np.testing.assert_array_equal(getattr(batch, field), getattr(alone, field))
    prepared = [(texts, options, b) for (texts, options), b in zip(asked, together, strict=True)
                if not isinstance(b, Exception)]
    windows = [Windows(texts, b.input_ids, b.offsets, b.special_tokens_mask,
                       fake_logits(b.input_ids, len(vocab.id2label)), b.text_index, options.aggregation_strategy)
               for texts, options, b in prepared]
    for w, found in zip(windows, aggregate_requests(windows, vocab), strict=True):
        assert found == aggregate_texts(w.texts, w.input_ids, w.offsets, w.special_tokens_mask, w.logits,
                                        w.text_index, vocab, w.strategy)


@settings(max_examples=40, deadline=None)
@given(requests=st.lists(st.one_of(st.tuples(st.lists(TEXT, max_size=3), STRATEGY, st.sampled_from([None, 2, 4])),
                                   st.just("refused upstream")), min_size=1, max_size=6),
       poisoned=st.integers(0, 5))
def test_the_text_step_answers_each_request_as_if_it_came_alone(vocab, requests, poisoned):
    """Windows, model calls in length groups and aggregation of many requests at once: each request gets the
    entities it gets alone, or its own refusal; one whose aggregation fails fails alone."""
    from triton_ner.core.errors import InvalidInput
    from triton_ner.core.parameters import RequestOptions
    from triton_ner.core.settings import Limits
    from triton_ner.core.text_step import entities_of_requests
    from triton_ner.core.tokenization import prepare

    asked = [ValueError(r) if isinstance(r, str) else (r[0], RequestOptions(r[1], stride=r[2])) for r in requests]
    if poisoned < len(asked) and not isinstance(asked[poisoned], Exception):  # a strategy aggregation cannot run
        texts, options = asked[poisoned]
        asked[poisoned] = (texts, dataclasses.replace(options, aggregation_strategy="bogus"))
    calls = []

    def model(ids, mask):
        calls.append(ids.shape)
        return fake_logits(ids, len(vocab.id2label))

    found = entities_of_requests(vocab, model, asked, Limits(max_windows=12, max_tokens_per_request=200))
    for request, answer in zip(asked, found, strict=True):
        if isinstance(request, Exception):
            assert answer is request
            continue
        texts, options = request
        try:
            alone = prepare(vocab.tokenizer, texts, options, max_windows=12, max_tokens=200)
        except InvalidInput as error:
            assert isinstance(answer, InvalidInput) and str(answer) == str(error)
            continue
        if options.aggregation_strategy == "bogus":
            assert isinstance(answer, ValueError) and "bogus" in str(answer)
            continue
        logits = fake_logits(alone.input_ids, len(vocab.id2label))
        assert answer == aggregate_texts(texts, alone.input_ids, alone.offsets, alone.special_tokens_mask, logits,
                                         alone.text_index, vocab, Strategy(options.aggregation_strategy),
                                         options.ignore_labels)
    assert all(shape[1] in Limits(1, 1).pad_lengths for shape in calls)  # one padded length per call


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=6), stride=st.integers(0, 20))
def test_windows_are_those_of_transformers_tokenizer_call(vocab, texts, stride):
    """encode calls the Rust tokenizer directly: its windows are what the pipeline's tokenizer call gives."""
    check_stride(vocab.tokenizer, stride)
    batch = encode(vocab.tokenizer, texts, stride)
    called = vocab.tokenizer(texts, truncation=True, stride=stride, return_overflowing_tokens=True, padding=True,
                             return_special_tokens_mask=True, return_offsets_mapping=True, return_tensors="np")
    for ours, theirs in (("input_ids", "input_ids"), ("attention_mask", "attention_mask"),
                         ("offsets", "offset_mapping"), ("special_tokens_mask", "special_tokens_mask"),
                         ("text_index", "overflow_to_sample_mapping")):
        np.testing.assert_array_equal(getattr(batch, ours), np.asarray(called[theirs]), err_msg=ours)


def test_windowing_leaves_the_shared_tokenizer_as_it_was(checkpoint):
    """encode() runs its own copy of the Rust tokenizer, configured once per stride: the tokenizer the text step
    shares (and aggregation decodes with) keeps its own truncation and padding."""
    vocab = load_vocabulary(checkpoint)
    backend = vocab.tokenizer.backend_tokenizer
    before = (backend.truncation, backend.padding)
    for stride in (16, 32):
        encode(vocab.tokenizer, ["Angela Merkel visited Paris.", "word " * 900], stride=stride)
    assert (backend.truncation, backend.padding) == before
    assert vocab.lexicon is vocab.lexicon  # built once, kept with the vocabulary

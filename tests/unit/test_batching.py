from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from triton_ner.core.batching import each_alone_on_failure, pad_stack, split_like
from triton_ner.core.errors import InvalidInput, Stopped
from triton_ner.core.length_groups import length_group_runs, run_pooled
from triton_ner.core.model_runs import check_rows, plan_runs, run_requests

shapes = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 9)), min_size=1, max_size=6)


def run_in_length_groups(run, inputs, pad_lengths, max_rows, pad_id=0, stopped=None, max_tokens=None, lanes=map):
    """Logits of each request's ``(input_ids, attention_mask)``, or the exception that stopped it: the requests
    pooled by :func:`run_pooled`, as the text step pools them, and the logits cut back per request."""
    owners = np.repeat(np.arange(len(inputs)), [len(ids) for ids, _ in inputs])
    logits, failed = run_pooled(run, pad_stack([i for i, _ in inputs], pad_id), pad_stack([m for _, m in inputs]),
                                owners, pad_lengths, max_rows, pad_id, stopped, max_tokens, lanes)
    pieces = split_like(logits, [i for i, _ in inputs])
    return [failed.get(i, piece) for i, piece in enumerate(pieces)]


@given(shapes)
def test_split_returns_each_request_unchanged(shape_list):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(1, 100, size=shape) for shape in shape_list]
    batch = pad_stack(arrays)
    assert batch.shape == (sum(s[0] for s in shape_list), max(s[1] for s in shape_list))
    for original, piece in zip(arrays, split_like(batch, arrays), strict=True):
        np.testing.assert_array_equal(original, piece)


def test_padding_uses_pad_value():
    batch = pad_stack([np.array([[1, 2, 3]]), np.array([[4]])], pad_value=0)
    np.testing.assert_array_equal(batch, [[1, 2, 3], [4, 0, 0]])


def test_split_keeps_trailing_axes():
    arrays = [np.zeros((1, 3)), np.zeros((2, 1))]
    logits = np.arange(3 * 3 * 2).reshape(3, 3, 2)
    first, second = split_like(logits, arrays)
    assert first.shape == (1, 3, 2) and second.shape == (2, 1, 2)
    np.testing.assert_array_equal(second, logits[1:, :1])


@given(st.lists(st.integers(1, 512), min_size=1, max_size=80), st.integers(512, 20000))
def test_runs_cover_every_row_once_within_budget_and_padding(lengths, budget):
    lengths = np.array(lengths)
    runs = plan_runs(lengths, budget)
    assert sorted(np.concatenate(runs).tolist()) == list(range(len(lengths)))
    for rows in runs:
        longest = lengths[rows].max()
        assert len(rows) == 1 or len(rows) * longest <= budget
        assert lengths[rows].min() * 2 >= longest


def test_short_rows_are_not_padded_to_a_long_neighbour():
    runs = plan_runs(np.array([20, 512, 22, 25, 500]), max_tokens=16384)
    assert [sorted(r.tolist()) for r in runs] == [[1, 4], [0, 2, 3]]


WIDTHS = (16, 32, 64, 128, 256, 512)


@given(st.lists(st.integers(1, 512), min_size=1, max_size=80), st.integers(1, 40))
def test_length_group_runs_cover_every_row_once_in_its_own_pad_length(lengths, max_rows):
    lengths = np.array(lengths)
    runs = length_group_runs(lengths, WIDTHS, max_rows)
    assert sorted(np.concatenate([rows for rows, _ in runs]).tolist()) == list(range(len(lengths)))
    for rows, width in runs:
        assert width in WIDTHS and len(rows) <= max_rows
        # the smallest pad length that holds each row: nothing is padded past it
        assert all(width == min(b for b in WIDTHS if b >= n) for n in lengths[rows])


def _fake_model(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logits that depend on each token and its position only, like a model on unpadded rows would not; enough
    to see rows put back in their place."""
    return np.stack([ids * 1.0, mask * 2.0 + np.arange(ids.shape[1])], axis=-1).astype(np.float32)


def test_length_group_runs_give_each_row_its_own_logits_and_calls_only_pad_length_shapes():
    rng = np.random.default_rng(0)
    lengths = np.array([3, 40, 17, 16, 200, 1])
    ids = np.zeros((6, 200), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n], mask[row, :n] = rng.integers(5, 100, n), 1
    shapes = []

    def model(i, m):
        shapes.append(i.shape)
        return _fake_model(i, m)

    [logits] = run_in_length_groups(model, [(ids, mask)], WIDTHS, max_rows=2)
    assert sorted(shapes) == sorted([(2, 16), (1, 16), (1, 32), (1, 64), (1, 256)])
    for row, n in enumerate(lengths):
        np.testing.assert_array_equal(logits[row, :n], _fake_model(ids[row:row + 1, :n], mask[row:row + 1, :n])[0])


def test_one_bad_request_fails_alone_and_the_others_get_their_logits():
    good = [(np.full((1, 4), 7), np.ones((1, 4), dtype=np.int64)),
            (np.full((2, 9), 8), np.ones((2, 9), dtype=np.int64))]
    poison = (np.full((1, 5), -1), np.ones((1, 5), dtype=np.int64))  # a token id the model cannot look up
    refused = InvalidInput("refused before the run")

    def model(ids, mask):
        if (ids < 0).any():
            raise IndexError("index -1 is out of bounds")
        return _fake_model(ids, mask)

    results = run_requests(model, [good[0], poison, refused, good[1]], max_tokens=16384)
    np.testing.assert_array_equal(results[0], _fake_model(*good[0]))
    assert isinstance(results[1], IndexError) and results[2] is refused
    np.testing.assert_array_equal(results[3], _fake_model(*good[1]))


def test_a_stopped_request_stops_between_runs_and_the_others_finish():
    # Rows of 100 tokens with a budget of 200 tokens per run: request 0 (6 rows) needs 3 runs alone.
    long = (np.full((6, 100), 3), np.ones((6, 100), dtype=np.int64))
    short = (np.full((1, 100), 4), np.ones((1, 100), dtype=np.int64))
    runs = []
    asked = []

    def model(ids, mask):
        runs.append(sorted(set(ids[:, 0].tolist())))
        return _fake_model(ids, mask)

    def stopped(i):
        asked.append(i)
        return Stopped("timeout") if i == 0 and len(runs) >= 1 else None

    results = run_requests(model, [long, short], max_tokens=200, stopped=stopped)
    assert isinstance(results[0], Stopped)
    np.testing.assert_array_equal(results[1], _fake_model(*short))
    assert runs[0] == [3] and [3] not in runs[1:]  # request 0 ran once, then its rows were left out
    assert len(runs) == 2 and 0 in asked


def test_length_group_runs_stop_before_the_next_run():
    ids, mask = np.ones((4, 16), dtype=np.int64), np.ones((4, 16), dtype=np.int64)
    calls = []

    def model(i, m):
        calls.append(i.shape)
        return _fake_model(i, m)

    [result] = run_in_length_groups(model, [(ids, mask)], WIDTHS, max_rows=1,
                                       stopped=lambda _: Stopped("cancelled") if len(calls) == 2 else None)
    assert isinstance(result, Stopped) and str(result) == "cancelled"
    assert len(calls) == 2


def test_rows_the_model_cannot_take_are_refused_by_name():
    with pytest.raises(InvalidInput, match="must both be"):
        check_rows(np.zeros((2, 3)), np.zeros((2, 4)), 512, 100)
    with pytest.raises(InvalidInput, match="at most 512"):
        check_rows(np.zeros((1, 513)), np.zeros((1, 513)), 512, 100)
    with pytest.raises(InvalidInput, match="holds 100; token ids are 0 to 99"):
        check_rows(np.array([[1, 100]]), np.ones((1, 2)), 512, 100)
    with pytest.raises(InvalidInput, match="holds -1"):
        check_rows(np.array([[-1, 5]]), np.ones((1, 2)), 512, 100)


def test_requests_pooled_in_length_groups_get_their_own_logits_errors_and_stops():
    rng = np.random.default_rng(1)

    def request(rows, length):
        ids = rng.integers(5, 100, (rows, length))
        return ids, np.ones_like(ids)

    requests = [request(2, 10), request(1, 40), request(3, 12), request(1, 300), request(2, 14)]
    requests[2][0][1, 3] = -1  # request 2 poisons the runs that hold its rows
    calls = []

    def model(ids, mask):
        calls.append(ids.shape)
        if (ids < 0).any():
            raise IndexError("index -1 is out of bounds")
        return _fake_model(ids, mask)

    with ThreadPoolExecutor(4) as pool:
        results = run_in_length_groups(model, requests, WIDTHS, max_rows=64,
                                          stopped=lambda i: Stopped("timeout") if i == 3 else None, lanes=pool.map)
    # One call per length for all requests (request 3 stopped before its own); the failed one again per request.
    assert sorted(calls) == [(1, 64), (2, 16), (2, 16), (3, 16), (7, 16)]
    assert isinstance(results[2], IndexError) and isinstance(results[3], Stopped)
    for i in (0, 1, 4):
        np.testing.assert_array_equal(results[i], _fake_model(*requests[i]))


def test_pooled_runs_respect_the_token_budget_per_call():
    lengths = np.array([512] * 70 + [16] * 3)
    runs = length_group_runs(lengths, WIDTHS, max_rows=1024, max_tokens=16384)
    assert [(len(rows), width) for rows, width in runs] == [(3, 16), (32, 512), (32, 512), (6, 512)]


@given(st.lists(st.integers(1, 512), min_size=1, max_size=80), st.integers(512, 20000))
def test_runs_are_the_same_whether_the_length_groups_come_together_or_apart(lengths, budget):
    """What makes a served request's runs those of the same rows in process: the text step calls the model step
    once per pad length, and the dynamic batcher may or may not put those calls into one execution."""
    from triton_ner.core.batching import padded_widths

    lengths = np.array(lengths)
    together = {tuple(sorted(r.tolist())) for r in plan_runs(lengths, budget)}
    widths = padded_widths(lengths)
    apart = set()
    for width in np.unique(widths):
        members = np.flatnonzero(widths == width)
        apart |= {tuple(sorted(members[r].tolist())) for r in plan_runs(lengths[members], budget)}
    assert together == apart


def test_warm_up_runs_every_padded_length_twice_with_real_token_ids():
    from triton_ner.core.runners import warm_up

    calls = []
    warm_up(lambda ids, mask: calls.append((ids.shape, int(ids.min()), int(ids.max()), int(mask.min()))),
            (16, 64, 512), token=7)
    assert calls == [((1, n), 7, 7, 1) for n in (16, 64, 512) for _ in range(2)]


def test_the_text_steps_warm_up_groups_an_entity_without_the_model_step():
    from triton_ner.core.parameters import parse
    from triton_ner.core.settings import Limits
    from triton_ner.core.text_step import entities_of_requests, warm_up_logits
    from triton_ner.core.vocabulary import load_vocabulary
    from triton_ner.export.fixture import fixture_model

    vocab = load_vocabulary(fixture_model())
    (found,) = entities_of_requests(vocab, warm_up_logits(len(vocab.id2label)),
                                    [(["Angela Merkel visited Paris."], parse({}))], Limits(8, 4096, (16,), 8, 0))
    last = vocab.id2label[len(vocab.id2label) - 1]
    assert [e["entity_group"] for e in found[0]] == [last.split("-")[-1]]


def test_each_alone_on_failure_runs_the_pool_once_or_each_member_alone():
    calls = []

    def run(members):
        calls.append(list(members))
        if 3 in members:
            raise ValueError("3 is bad")
        return [m * 10 for m in members]

    assert each_alone_on_failure(run, [1, 2]) == [([1, 2], [10, 20])] and calls == [[1, 2]]
    calls.clear()
    found = each_alone_on_failure(run, [1, 3, 2])
    assert [(members, r if not isinstance(r, Exception) else str(r)) for members, r in found] == [
        ([1], [10]), ([3], "3 is bad"), ([2], [20])]
    assert calls == [[1, 3, 2], [1], [3], [2]]
    calls.clear()
    [(members, error)] = each_alone_on_failure(run, [3])  # alone already: its error, not a second run
    assert members == [3] and isinstance(error, ValueError) and calls == [[3]]

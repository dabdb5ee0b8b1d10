import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ner.batching import pad_stack, plan_runs, split_like

shapes = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 9)), min_size=1, max_size=6)


@given(shapes)
def test_split_returns_each_request_unchanged(shape_list):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(1, 100, size=shape) for shape in shape_list]
    batch = pad_stack(arrays)
    assert batch.shape == (sum(s[0] for s in shape_list), max(s[1] for s in shape_list))
    for original, piece in zip(arrays, split_like(batch, arrays)):
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

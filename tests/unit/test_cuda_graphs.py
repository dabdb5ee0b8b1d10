"""Fixed-shape runs (the runner behind the cuda variant's CUDA graphs): the shapes, and on CPU the same buffers and
padding the GPU path replays, held against the plain TorchScript runner."""

import numpy as np
import pytest

from triton_ner.core.cuda_graphs import Shapes

SHAPES = Shapes(lengths=(16, 32, 64), max_rows=8, max_tokens=256)


def test_shapes_are_powers_of_two_within_the_row_and_token_bounds():
    assert SHAPES.rows(16) == (1, 2, 4, 8)
    assert SHAPES.rows(32) == (1, 2, 4, 8)
    assert SHAPES.rows(64) == (1, 2, 4)  # 4 x 64 = 256 tokens
    assert Shapes((512,), 128, 16384).rows(512) == (1, 2, 4, 8, 16, 32)
    assert Shapes((16,), 100, 16384).rows(16) == (1, 2, 4, 8, 16, 32, 64, 100)
    assert Shapes((512,), 8, 256).rows(512) == (1,)  # one row even past the token bound
    shapes = SHAPES.all()
    assert len(shapes) == len(set(shapes)) == 11
    assert [r * n for r, n in shapes] == sorted((r * n for r, n in shapes), reverse=True)  # largest captured first


@pytest.mark.parametrize(("call", "shape"), [
    ((1, 1), (1, 16)), ((3, 16), (4, 16)), ((3, 17), (4, 32)), ((8, 64), (4, 64)), ((20, 5), (8, 16)),
])
def test_a_call_is_padded_to_the_smallest_shape_that_holds_it(call, shape):
    assert SHAPES.fit(*call) == shape


def test_a_call_longer_than_every_shape_is_refused():
    with pytest.raises(ValueError, match="65 tokens"):
        SHAPES.fit(1, 65)


@pytest.fixture(scope="module")
def traced(checkpoint, tmp_path_factory):
    from transformers import AutoTokenizer

    from triton_ner.export import convert

    model, tokenizer = convert.load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    return convert.export_torchscript(model, tokenizer, tmp_path_factory.mktemp("graphs") / "model.pt")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fixed_shapes_give_the_plain_runners_logits(traced, precision):
    """Every call shape, in an order where a large call leaves its buffers full before smaller ones: the real
    tokens' logits are the plain runner's, whatever the padding around them or what an earlier call left there."""
    from triton_ner.core.runners import load_runner

    plain = load_runner(traced, precision=precision)
    fixed = load_runner(traced, precision=precision, shapes=SHAPES)
    rng = np.random.default_rng(0)
    tolerance = 1e-4 if precision == "fp32" else 0.1
    for rows, length in ((8, 64), (3, 10), (20, 16), (1, 64), (5, 33), (2, 5), (8, 64), (1, 1)):
        ids = rng.integers(5, 90, (rows, length))
        mask = np.ones_like(ids)
        mask[1:, max(1, length // 2):] = 0
        want, got = plain(ids, mask), fixed(ids, mask)
        assert got.shape == want.shape and got.dtype == np.float32
        real = mask.astype(bool)
        assert np.abs(got - want)[real].max() <= tolerance, (rows, length)

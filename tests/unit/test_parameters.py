import pytest

from triton_ner.core.errors import InvalidInput
from triton_ner.core.parameters import RequestOptions, Strategy, parse


def test_defaults_group_entities_and_drop_o():
    assert parse({}) == RequestOptions(Strategy.SIMPLE, ("O",))


@pytest.mark.parametrize("value", ["none", "simple", "first", "average", "max", "MAX"])
def test_every_strategy_is_accepted(value):
    assert parse({"aggregation_strategy": value}).aggregation_strategy.value == value.lower()


def test_unknown_strategy_names_parameter_and_choices():
    with pytest.raises(InvalidInput, match="aggregation_strategy 'bogus' is not one of: none, simple, first"):
        parse({"aggregation_strategy": "bogus"})


@pytest.mark.parametrize(("value", "labels"), [
    ('["O", "B-MISC"]', ("O", "B-MISC")), ("O, MISC", ("O", "MISC")), ("", ()), ("[]", ()),
])
def test_ignore_labels_as_json_or_commas(value, labels):
    assert parse({"ignore_labels": value}).ignore_labels == labels


@pytest.mark.parametrize("value", ["[O]", '[1, 2]', 3])
def test_bad_ignore_labels_are_refused(value):
    with pytest.raises(InvalidInput, match="ignore_labels"):
        parse({"ignore_labels": value})


@pytest.mark.parametrize("key", ["something_else", "aggregation-strategy", "Stride", "ignore_label"])
def test_unknown_and_mistyped_parameters_are_refused_by_name(key):
    with pytest.raises(InvalidInput, match=f"unknown request parameter '{key}'; the parameters are: "
                                           "aggregation_strategy, ignore_labels, stride"):
        parse({key: 1})


@pytest.mark.parametrize("value", ["-1", "1.5", "²", "٣", " ", True, 2.0, -3])
def test_stride_that_is_not_a_whole_number_is_refused(value):
    with pytest.raises(InvalidInput, match="stride .* must be a whole number of tokens"):
        parse({"stride": value})

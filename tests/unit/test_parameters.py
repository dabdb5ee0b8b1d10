import pytest

from triton_ner.core.parameters import Strategy
from triton_ner.core.parameters import InvalidInput, RequestOptions, parse


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


def test_other_models_parameters_are_ignored():
    assert parse({"something_else": 1}) == RequestOptions()

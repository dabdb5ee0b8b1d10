"""The steps' typed settings: what the export writes into every config is what the steps read back."""

import pytest

from triton_ner.core.settings import Limits, ModelStepSettings, TextStepSettings, from_parameters, to_parameters
from triton_ner.core.variants import Format, Precision, Target, exported
from triton_ner.export.configs import repository_configs


def _parameters(config) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


@pytest.mark.parametrize("path", sorted(repository_configs(exported(set(Format), set(Precision), Target.BOTH))))
def test_every_written_parameter_is_read_back_typed(path):
    config = repository_configs(exported(set(Format), set(Precision), Target.BOTH))[path]
    if config.backend != "python":
        return
    kind = TextStepSettings if config.name == "ner_text" else ModelStepSettings
    written = _parameters(config)
    settings = from_parameters(kind, written)
    assert to_parameters(settings) == written  # no parameter the step ignores, none it lacks
    if kind is TextStepSettings:
        assert isinstance(settings.limits.pad_lengths, tuple) and len(settings.model_inputs) == 2
        assert all(isinstance(n, int) for n in settings.limits.pad_lengths)
    else:
        assert isinstance(settings.max_tokens_per_run, int) and isinstance(settings.max_rows_per_graph, int)


def test_a_missing_parameter_is_named():
    written = to_parameters(TextStepSettings("t", 10, Limits(4, 100), "m", ("a", "b"), "c"))
    del written["max_windows"]
    with pytest.raises(KeyError, match="max_windows"):
        from_parameters(TextStepSettings, written)
    assert from_parameters(ModelStepSettings, {"model_file": "model.onnx", "precision": "fp32",
                                               "tokenizer_dir": "t"}).max_rows_per_graph == 0  # its default

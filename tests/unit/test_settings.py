"""The steps' typed settings: what the export writes into every config is what the steps read back."""

import pytest

from triton_ner.core.errors import Code, ConfigurationError
from triton_ner.core.settings import Limits, ModelStepSettings, TextStepSettings, from_parameters, to_parameters
from triton_ner.core.variants import Format, Precision, Target, exported
from triton_ner.export.configs import repository_configs


def _parameters(config) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


CONFIGS = repository_configs(exported(set(Format), set(Precision), Target.BOTH))
# The Python-backend steps read their settings back; NVIDIA's backends read theirs themselves.
PYTHON_CONFIGS = sorted(path for path, config in CONFIGS.items() if config.backend == "python")


def test_both_python_steps_have_configs_to_read_back():
    assert {CONFIGS[path].name for path in PYTHON_CONFIGS} == {"ner_text", "ner_model"}


@pytest.mark.parametrize("path", PYTHON_CONFIGS)
def test_every_written_parameter_is_read_back_typed(path):
    config = CONFIGS[path]
    kind = TextStepSettings if config.name == "ner_text" else ModelStepSettings
    written = _parameters(config)
    settings = from_parameters(kind, written)
    assert to_parameters(settings) == written  # no parameter the step ignores, none it lacks
    if kind is TextStepSettings:
        assert isinstance(settings.limits.pad_lengths, tuple) and len(settings.model_inputs) == 2
        assert all(isinstance(n, int) for n in settings.limits.pad_lengths)
    else:
        assert isinstance(settings.max_tokens_per_run, int) and isinstance(settings.max_rows_per_graph, int)


def test_a_missing_parameter_is_a_configuration_error_naming_it():
    written = to_parameters(TextStepSettings("t", 10, Limits(4, 100), "m", ("a", "b"), "c"))
    del written["max_windows"]
    with pytest.raises(ConfigurationError, match="^setting 'max_windows': the config has no such parameter$") as error:
        from_parameters(TextStepSettings, written)
    assert error.value.setting == "max_windows" and error.value.code is Code.INVALID_ARG
    assert from_parameters(ModelStepSettings, {"model_file": "model.onnx", "precision": "fp32",
                                               "tokenizer_dir": "t"}).max_rows_per_graph == 0  # its default


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("max_windows", "four", "'four' is not a whole number"),
    ("pad_lengths", "16,x", "'16,x' is not a list of whole numbers separated by commas"),
    ("precision", "fp64", "'fp64' is not one of fp32, fp16, bf16, int8"),
    ("cuda_graphs", "yes", None),  # not a setting: ignored by the text step
])
def test_a_bad_value_is_a_configuration_error_naming_the_setting(setting, value, message):
    kind = ModelStepSettings if setting == "precision" else TextStepSettings
    written = to_parameters(TextStepSettings("t", 10, Limits(4, 100), "m", ("a", "b"), "c") if kind is TextStepSettings
                            else ModelStepSettings("model.pt", Precision.FP16, "t"))
    if message is None:
        assert from_parameters(kind, written | {setting: value}) == from_parameters(kind, written)
        return
    with pytest.raises(ConfigurationError, match=f"^setting '{setting}': {message}$"):
        from_parameters(kind, written | {setting: value})


def test_a_precision_is_written_as_its_name_and_read_back_as_the_enum():
    written = to_parameters(ModelStepSettings("model.pt", Precision.BF16, "t"))
    assert written["precision"] == "bf16"
    assert from_parameters(ModelStepSettings, written).precision is Precision.BF16

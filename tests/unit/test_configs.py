"""The committed config.pbtxt files are exactly what export/configs.py generates, and they hang together."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.configs import render, repository_configs
from ner import names

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"


@pytest.mark.parametrize("name", list(repository_configs()))
def test_committed_config_is_generated(name):
    """Fails when export/configs.py and the committed file disagree: run `make configs` and commit."""
    assert (COMMITTED / name / "config.pbtxt").read_text() == render(repository_configs()[name])


@pytest.mark.parametrize("name", list(repository_configs()))
def test_committed_config_parses_as_model_config(name):
    config = text_format.Parse((COMMITTED / name / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.name == name


def test_ensemble_steps_are_wired_to_existing_tensors():
    configs = repository_configs()
    ensemble = configs[names.ENSEMBLE]
    available = {t.name for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = configs[step.model_name]
        assert set(step.input_map) == {t.name for t in model.input}
        assert set(step.input_map.values()) <= available, step.model_name
        assert set(step.output_map) <= {t.name for t in model.output}
        available |= set(step.output_map.values())
    assert {t.name for t in ensemble.output} <= available


def test_every_model_has_its_code_committed():
    for name, config in repository_configs().items():
        if config.backend == "python":
            assert (COMMITTED / name / "1" / "model.py").exists(), name

"""The serving side's error family in the real server: an error reaches the client with the Triton code it carries,
a model step's error through the text step included, and a bad step setting stops the start with one line naming
the setting."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from tests.parity import assert_same, text_with_tokens
from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.core.errors import ServerError
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer

# Below the text step's longest padded length (512): the model step refuses the longer windows it is sent.
MODEL_STEP_LENGTH = 32


def _with_parameter(repository: Path, model: str, name: str, value: str, into: Path) -> Path:
    """A copy of ``repository`` whose ``model``'s config has the parameter ``name`` set to ``value``."""
    shutil.copytree(repository, into, symlinks=True)
    path = into / model / "config.pbtxt"
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    assert name in config.parameters, f"{model} has no parameter {name}"
    config.parameters[name].string_value = value
    path.write_text(text_format.MessageToString(config))
    return into


@pytest.fixture(scope="module")
def short_model_step(repository, tmp_path_factory):
    copy = _with_parameter(repository, names.MODEL, "max_sequence_length", str(MODEL_STEP_LENGTH),
                           tmp_path_factory.mktemp("short-model-step") / "model_repository")
    with TritonServer(copy, free_ports()) as server:
        yield server


def _refusal_of_a_long_text(server: TritonServer, checkpoint: Path) -> InferenceServerException:
    from transformers import AutoTokenizer

    long = text_with_tokens(AutoTokenizer.from_pretrained(checkpoint), 40, seed=2)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput(names.TEXT, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([long.encode()], dtype=np.object_))
    try:
        with pytest.raises(InferenceServerException) as caught:
            grpc.infer(names.ENSEMBLE, [tensor])
    finally:
        grpc.close()
    return caught.value


def test_a_model_step_error_reaches_the_client_with_the_model_steps_message(short_model_step, checkpoint,
                                                                            pipelines):
    from transformers import AutoTokenizer

    short = text_with_tokens(AutoTokenizer.from_pretrained(checkpoint), 10, seed=1)
    with NerClient(short_model_step.grpc_url) as client:
        assert_same(client.predict(short), pipelines("simple")(short))
    # ner_model's own refusal (triton_ner.core.model_runs.check_rows), relayed by the text step as it is.
    message = _refusal_of_a_long_text(short_model_step, checkpoint).message()
    assert message.endswith(f"; the model takes at most {MODEL_STEP_LENGTH}"), message


@pytest.mark.xfail(strict=True, reason=(
    "Triton 2.51's Python backend answers a BLS call that its callee refused with the callee's message and the code "
    "INTERNAL, whatever the callee's code: the text step passes on the code it is given (ModelStepError)"))
def test_a_model_step_error_reaches_the_client_with_the_model_steps_code(short_model_step, checkpoint):
    assert _refusal_of_a_long_text(short_model_step, checkpoint).status() == "StatusCode.INVALID_ARGUMENT"


def test_a_bad_step_setting_stops_the_start_in_one_line_naming_it(repository, tmp_path):
    copy = _with_parameter(repository, names.TEXT_STEP, "max_windows", "four", tmp_path / "model_repository")
    with pytest.raises(ServerError) as caught:
        TritonServer(copy, free_ports()).start(timeout=120)
    message = str(caught.value)
    assert "\n" not in message and names.TEXT_STEP in message, message
    assert "setting 'max_windows': 'four' is not a whole number" in message, message

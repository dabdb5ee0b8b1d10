"""The CPU variants of a repository served by the real Triton: TorchScript (Python-backend runner around
torch.jit.load) and INT8 ONNX, chosen at start with --model-config-name."""

import pytest
import tritonclient.grpc as grpcclient

from client import NerClient
from export.configs import Format, Precision, Target
from export.repository import ExportPlan, build
from export.source import Checkpoint
from ner import names
from ner.inprocess import LocalNer
from ner.server import TritonServer, free_ports
from tests.parity import HARD_CASES, assert_same

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def variants_repository(checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("variants") / "repo"
    plan = ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT}), frozenset({Precision.FP32, Precision.INT8}),
                      Target.CPU)
    build(Checkpoint(checkpoint, "fixture"), output, plan, log=lambda _: None)
    return output


def _served(repository, config_name, texts, strategy):
    with TritonServer(repository, free_ports(), config_name=config_name) as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        model_file = raw.get_model_config(names.MODEL).config.parameters["model_file"].string_value
        raw.close()
        with NerClient(server.grpc_url) as client:
            return model_file, client.predict(texts, aggregation_strategy=strategy)


def test_torchscript_is_served_and_equals_the_pipeline(variants_repository, parity_texts, pipelines):
    texts = parity_texts[:30] + list(HARD_CASES.values())
    model_file, served = _served(variants_repository, "torchscript", texts, "first")
    assert model_file == "model.pt"
    for text, got in zip(texts, served):
        assert_same(got, pipelines("first")(text), text)


def test_int8_is_served_as_the_in_process_int8_model_computes(variants_repository, parity_texts):
    texts = parity_texts[:30] + list(HARD_CASES.values())
    model_file, served = _served(variants_repository, "int8", texts, "simple")
    assert model_file == "model_int8.onnx"
    local = LocalNer(variants_repository / names.MODEL / "1" / model_file,
                     variants_repository / names.TOKENIZER / "1" / names.TOKENIZER_DIR)
    for text, got, want in zip(texts, served, local.predict(texts)):
        assert_same(got, want, text)

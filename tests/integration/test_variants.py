"""The Python-runner variants of a repository served by the real Triton, chosen at start with --model-config-name:
TorchScript, INT8 ONNX, BF16 TorchScript and OpenVINO's FP32, BF16 and INT8 on CPU, and the cuda variant
(TorchScript on the GPU in FP16) with only its instance kind switched to CPU."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from tests.backends import ensure_built
from tests.parity import HARD_CASES, assert_same
from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.core.inprocess import LocalNer
from triton_ner.core.variants import Format, Precision, Target
from triton_ner.export.assemble import ExportPlan, build
from triton_ner.export.configs import on_cpu, render
from triton_ner.export.source import Checkpoint
from triton_ner.server.arguments import free_ports
from triton_ner.server.installation import built_backend
from triton_ner.server.launcher import TritonServer


@pytest.fixture(scope="module")
def variants_repository(checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("variants") / "repo"
    plan = ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT, Format.OPENVINO}),
                      frozenset({Precision.FP32, Precision.INT8, Precision.BF16, Precision.FP16}), Target.BOTH)
    build(Checkpoint(checkpoint, "fixture"), output, plan, log=lambda _: None)
    return output


def _served(repository, config_name, texts, strategy):
    with TritonServer(repository, free_ports(), config_name=config_name) as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        model_file = raw.get_model_config(names.MODEL).config.parameters["model_file"].string_value
        raw.close()
        with NerClient(server.grpc_url) as client:
            return model_file, client.predict(texts, aggregation_strategy=strategy)


@pytest.mark.parametrize(("config_name", "model_file"), [("torchscript", "model.pt"), ("openvino", "model.xml")])
def test_fp32_variant_is_served_and_equals_the_pipeline(variants_repository, parity_texts, pipelines, config_name,
                                                        model_file):
    texts = parity_texts[:30] + list(HARD_CASES.values())
    served_file, served = _served(variants_repository, config_name, texts, "first")
    assert served_file == model_file
    for text, got in zip(texts, served, strict=True):
        assert_same(got, pipelines("first")(text), text)


@pytest.mark.parametrize(("config_name", "model_file"), [("int8", "model_int8.onnx"),
                                                         ("openvino_int8", "model_int8.xml")])
def test_int8_is_served_as_the_in_process_int8_model_computes(variants_repository, parity_texts, config_name,
                                                              model_file):
    texts = parity_texts[:30] + list(HARD_CASES.values())
    served_file, served = _served(variants_repository, config_name, texts, "simple")
    assert served_file == model_file
    local = LocalNer(variants_repository / names.MODEL / "1" / model_file,
                     variants_repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR)
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)


@pytest.mark.parametrize(("config_name", "model_file"), [("bf16", "model.pt"), ("openvino_bf16", "model_bf16.xml")])
def test_bf16_is_served_as_the_in_process_bf16_model_computes(variants_repository, parity_texts, pipelines,
                                                              config_name, model_file):
    """Same code, same precision: the served entities are the in-process ones; and BF16 finds the pipeline's
    entities on these texts (type and span), its scores rounded to BF16."""
    texts = parity_texts[:30] + list(HARD_CASES.values())
    served_file, served = _served(variants_repository, config_name, texts, "simple")
    assert served_file == model_file
    local = LocalNer(variants_repository / names.MODEL / "1" / model_file,
                     variants_repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR, precision="bf16")
    spans = lambda found: [(e["entity_group"], e["start"], e["end"]) for e in found]  # noqa: E731
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)
    agree = sum(spans(got) == spans(pipelines()(text)) for text, got in zip(texts, served, strict=True))
    assert agree >= 0.95 * len(texts)


def test_openvino_bf16_in_nvidias_openvino_backend_is_the_in_process_bf16_model(variants_repository, parity_texts):
    """NVIDIA's openvino backend (built by backends/build-openvino.sh), its dynamic batcher merging the text step's
    length groups of concurrent requests: the entities of OpenVINO in BF16 in process, on texts sent at once."""
    ensure_built("openvino", lambda: built_backend("openvino"))
    texts = parity_texts[:40] + list(HARD_CASES.values())
    local = LocalNer(variants_repository / names.MODEL / "1" / "model_bf16.xml",
                     variants_repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR, precision="bf16")
    with TritonServer(variants_repository, free_ports(), config_name="openvino_bf16_backend") as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        config = raw.get_model_config(names.MODEL).config
        raw.close()
        assert config.backend == "openvino" and config.default_model_filename == "model_bf16.xml"
        with NerClient(server.grpc_url) as client, ThreadPoolExecutor(8) as pool:
            served = list(pool.map(lambda text: client.predict(text), texts))
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)


def test_cuda_variant_loads_with_its_instances_switched_to_cpu(variants_repository, tmp_path, parity_texts):
    """The GPU Python-runner variant, with only KIND_GPU switched to KIND_CPU: it loads, runs the TorchScript model
    in FP16 on the CPU, and its entities are those of the in-process FP16 model (on a GPU it runs on cuda:N)."""
    repository = tmp_path / "repo"
    shutil.copytree(variants_repository, repository, symlinks=True)
    for path in repository.glob("*/configs/cuda.pbtxt"):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        path.write_text(render(on_cpu(config)))
    texts = parity_texts[:20]
    model_file, served = _served(repository, "cuda", texts, "simple")
    local = LocalNer(repository / names.MODEL / "1" / model_file,
                     repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR, precision="fp16")
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)


def test_a_bad_request_in_a_dynamic_batch_fails_alone(variants_repository):
    """Requests sent straight to the model step, at once, so the dynamic batcher puts them together: the one with
    a token id past the vocabulary (which would fail the pooled run) alone gets INVALID_ARGUMENT, the others their
    logits."""
    good = [np.array([[2, 10 + i, 3]], dtype=np.int64) for i in range(6)]
    bad = np.array([[2, 10**7, 3]], dtype=np.int64)
    with TritonServer(variants_repository, free_ports()) as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        want = [_logits(raw, ids) for ids in good]  # alone
        results: dict[int, object] = {}
        done = threading.Event()

        def callback(index, result, error):
            results[index] = error or result.as_numpy(names.LOGITS)
            if len(results) == 7:
                done.set()

        for index, ids in enumerate([*good[:3], bad, *good[3:]]):
            raw.async_infer(names.MODEL, _model_inputs(ids), partial(callback, index))
        assert done.wait(60)
        raw.close()
    assert isinstance(results[3], InferenceServerException)
    assert results[3].status() == "StatusCode.INVALID_ARGUMENT" and "token ids are 0 to" in results[3].message()
    for index, expected in zip([0, 1, 2, 4, 5, 6], want, strict=True):
        np.testing.assert_allclose(results[index], expected, atol=1e-5)


def _model_inputs(ids):
    inputs = [grpcclient.InferInput(names.INPUT_IDS, list(ids.shape), "INT64"),
              grpcclient.InferInput(names.ATTENTION_MASK, list(ids.shape), "INT64")]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(np.ones_like(ids))
    return inputs


def _logits(raw, ids):
    return raw.infer(names.MODEL, _model_inputs(ids)).as_numpy(names.LOGITS)

"""The Python-runner variants of a repository served by the real Triton, chosen at start with --model-config-name:
TorchScript, INT8 ONNX, BF16 TorchScript and OpenVINO's FP32, BF16 and INT8 on CPU, and the cuda variant
(TorchScript on the GPU in FP16) with only its instance kind switched to CPU. And the model step's pooled run
failing in a dynamic batch, on a poisoned copy of the ONNX file."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from tests.backends import ensure_built
from tests.executions import executions, since
from tests.parity import HARD_CASES, MIN_PIPELINE_AGREEMENT, assert_same, pipeline_agreement, spans
from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.core.inprocess import LocalNer
from triton_ner.core.runners import onnx_runner
from triton_ner.core.variants import Format, Precision, Target
from triton_ner.core.vocabulary import checkpoint_config
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
def test_int8_is_served_as_the_in_process_int8_model_computes(variants_repository, parity_texts, pipelines,
                                                              config_name, model_file):
    """Same code, same file: the served entities are the in-process ones; and INT8 finds the pipeline's entities
    (type and span) on these texts, which the in-process model of the same file cannot tell."""
    texts = parity_texts[:30] + list(HARD_CASES.values())
    served_file, served = _served(variants_repository, config_name, texts, "simple")
    assert served_file == model_file
    local = LocalNer(variants_repository / names.MODEL / "1" / model_file,
                     variants_repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR)
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)
    agreement = pipeline_agreement(served, [pipelines()(text) for text in texts])
    assert agreement >= MIN_PIPELINE_AGREEMENT, f"{config_name}: {agreement:.3f} of the texts as the pipeline finds"


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
    for text, got, want in zip(texts, served, local.predict(texts), strict=True):
        assert_same(got, want, text)
    agreement = pipeline_agreement(served, [pipelines()(text) for text in texts])
    assert agreement >= MIN_PIPELINE_AGREEMENT, f"{config_name}: {agreement:.3f} of the texts as the pipeline finds"


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


def test_cuda_variant_loads_with_its_instances_switched_to_cpu(variants_repository, tmp_path, parity_texts,
                                                               pipelines):
    """The GPU Python-runner variant, with only KIND_GPU switched to KIND_CPU: it loads, runs the TorchScript model
    in FP16 on the CPU, and its entities are those of the in-process FP16 model (on a GPU it runs on cuda:N) and,
    on these texts, the pipeline's (type and span). FP16 numerics on a GPU are the GPU check's."""
    repository = tmp_path / "repo"
    shutil.copytree(variants_repository, repository, symlinks=True)
    for path in repository.glob("*/configs/cuda.pbtxt"):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        path.write_text(render(on_cpu(config)))
    texts = parity_texts[:20] + list(HARD_CASES.values())
    model_file, served = _served(repository, "cuda", texts, "simple")
    local = LocalNer(repository / names.MODEL / "1" / model_file,
                     repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR, precision="fp16").predict(texts)
    # The served shapes (rows and tokens padded to the graphs' sizes) are not the in-process batch's, which moves
    # FP16 scores beyond 1e-5 on some texts: scores are compared on the first 20, types and spans on all.
    for text, got, want in zip(texts[:20], served[:20], local[:20], strict=True):
        assert_same(got, want, text)
    assert [spans(got) for got in served] == [spans(want) for want in local]
    agreement = pipeline_agreement(served, [pipelines()(text) for text in texts])
    assert agreement >= MIN_PIPELINE_AGREEMENT, f"cuda in FP16: {agreement:.3f} of the texts as the pipeline finds"


# A token id of the fixture's vocabulary that the poisoned model file fails on (not the model step's warm-up token).
POISON = 777


def _poisoned_onnx(source: Path, target: Path, token: int) -> None:
    """A copy of the ONNX model ``source`` that computes the same logits, except that a run whose ``input_ids``
    hold ``token`` anywhere fails in ONNX Runtime: the logits are reshaped to one label more. The token is in the
    vocabulary, so the model step's input checks (``check_rows``) pass it; only running the model fails, as a
    runtime failing on one input would."""
    model = onnx.load(source)
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["unchecked_logits" if name == names.LOGITS else name for name in node.output]
    graph.initializer.extend([numpy_helper.from_array(np.array(token, dtype=np.int64), "poison"),
                              numpy_helper.from_array(np.array([0], dtype=np.int64), "axis_0"),
                              numpy_helper.from_array(np.array([0, 0], dtype=np.int64), "zeros_2")])
    graph.node.extend([
        helper.make_node("Equal", [names.INPUT_IDS, "poison"], ["poisoned_at"]),
        helper.make_node("Cast", ["poisoned_at"], ["poisoned_at_int"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["poisoned_at_int"], ["poisoned"], keepdims=0),  # 1 if anywhere, else 0
        helper.make_node("Unsqueeze", ["poisoned", "axis_0"], ["poisoned_1"]),
        helper.make_node("Concat", ["zeros_2", "poisoned_1"], ["shape_change"], axis=0),
        helper.make_node("Shape", ["unchecked_logits"], ["logits_shape"]),
        helper.make_node("Add", ["logits_shape", "shape_change"], ["asked_shape"]),
        helper.make_node("Reshape", ["unchecked_logits", "asked_shape"], [names.LOGITS]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, target)


def test_a_request_that_fails_the_pooled_run_fails_alone_in_its_dynamic_batch(repository, tmp_path):
    """Seven requests straight to the model step, one of them holding a token id on which the model file (a
    poisoned copy, :func:`_poisoned_onnx`) fails at run time, past the input checks. The step pools every request
    of an execution into one run; that run fails, and each request then runs alone: the bad one gets its own
    error (INTERNAL: a failing model is no fault of the request's form), the six others the logits the real model
    file computes in process.

    That they shared a batch is read from Triton's statistics, not assumed: the dynamic batcher of this copy waits
    up to a second for requests, and over the window no execution held a single request, in fewer executions
    than requests."""
    copy = tmp_path / "repo"
    shutil.copytree(repository, copy)
    step = copy / names.MODEL
    assert POISON < checkpoint_config(copy / names.TEXT_STEP / "1" / names.TOKENIZER_DIR)["vocab_size"]
    _poisoned_onnx(step / "1" / "model.onnx", step / "1" / "model_poisoned.onnx", POISON)
    config = text_format.Parse((step / "config.pbtxt").read_text(), mc.ModelConfig())
    config.parameters["model_file"].string_value = "model_poisoned.onnx"
    config.dynamic_batching.max_queue_delay_microseconds = 1_000_000
    (step / "config.pbtxt").write_text(render(config))

    good = [np.array([[2, *range(10 + i, 12 + 2 * i), 3]], dtype=np.int64) for i in range(6)]  # 4 to 9 tokens
    bad = np.array([[2, 40, POISON, 41, 3]], dtype=np.int64)
    sent = [*good[:3], bad, *good[3:]]
    with TritonServer(copy, free_ports()) as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        before = executions(server.grpc_url, names.MODEL)
        results: dict[int, object] = {}
        done = threading.Event()

        def callback(index, result, error):
            results[index] = error or result.as_numpy(names.LOGITS)
            if len(results) == len(sent):
                done.set()

        for index, ids in enumerate(sent):
            raw.async_infer(names.MODEL, _model_inputs(ids), partial(callback, index))
        assert done.wait(60)
        raw.close()
        window = since(before, server.grpc_url, names.MODEL, len(sent))
    print(f"\nmodel step: {window.inferences} requests in {window.executions} executions, "
          f"batch sizes {dict(window.batches)}")
    assert window.inferences == len(sent) and window.shared(), window
    assert 1 not in window.batches, window  # the bad request shared its execution with good ones
    error = results[3]
    assert isinstance(error, InferenceServerException), error
    assert error.status() == "StatusCode.INTERNAL" and "Reshape" in error.message(), error.message()
    real = onnx_runner(step / "1" / "model.onnx")
    for index, ids in zip([0, 1, 2, 4, 5, 6], good, strict=True):
        assert isinstance(results[index], np.ndarray), f"request {index}: {results[index]}"
        np.testing.assert_allclose(results[index], real(ids, np.ones_like(ids)), atol=1e-5)


def _model_inputs(ids):
    inputs = [grpcclient.InferInput(names.INPUT_IDS, list(ids.shape), "INT64"),
              grpcclient.InferInput(names.ATTENTION_MASK, list(ids.shape), "INT64")]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(np.ones_like(ids))
    return inputs

"""Every ONNX variant of the GPU configs rehearsed on CPU: loaded by NVIDIA's own ``onnxruntime`` backend in the
real local Triton, on ONNX Runtime's CPU provider.

The backend (r24.10, the server's release) is built from source by ``backends/build-onnxruntime.sh``; the session
builds it if it is not built (skipped only outside CI when the build cannot run). Each GPU config goes through
``export.configs.on_cpu`` (instances on CPU, no GPU accelerator, one intra-op thread) and nothing else: tensors,
dims, dynamic batching, queue policy and warmup load as written, with the backend's own checks against the graph.
So no case runs CUDA, TensorRT or FP16 on a GPU; the cases are named ``...-on-cpu-...`` for that, and
docs/gpu-check.md lists what only a GPU run proves.

Results: FP32 files equal the transformers pipeline (``assert_same``: same entities, scores within 1e-5). The FP16
file equals what ``LocalNer`` computes on the same file with the same ONNX Runtime library, by the same
``assert_same``. The INT8 file is not bit-equal to ``LocalNer``: its dynamic quantization takes the activations'
scale from the whole batch, and the served batch differs (windows padded to 16/32/64/... tokens, rows of other
requests), so scores move in the third decimal (up to 2.4e-3 seen) and near-ties flip (a subword "R" against "Re" in an
unknown name). INT8 must agree on entities as the export requires of it: over these texts and the export's
agreement corpus, 2·|served ∩ in-process| / (|served| + |in-process|) of (text, type, start, end) at least 99%.
FP16 and INT8 must also find the pipeline's entities (type and span) in most texts (``MIN_PIPELINE_AGREEMENT``),
which ``LocalNer`` on the same file cannot tell.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.backends import ensure_built
from tests.parity import HARD_CASES, MIN_PIPELINE_AGREEMENT, assert_same, pipeline_agreement, text_with_tokens
from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.core.errors import ServerError
from triton_ner.core.inprocess import LocalNer
from triton_ner.core.variants import Format, Precision, Target
from triton_ner.export.assemble import ExportPlan, build
from triton_ner.export.configs import ServingOptions, on_cpu, render
from triton_ner.export.convert import agreement_corpus, entity_agreement
from triton_ner.export.source import Checkpoint
from triton_ner.server.arguments import free_ports
from triton_ner.server.installation import onnxruntime_backend
from triton_ner.server.launcher import TritonServer

GPU_CONFIG = f"{names.MODEL}/configs/gpu.pbtxt"


@pytest.fixture(scope="session")
def nvidia_onnxruntime():
    """The built backend folder; built now if needed. In CI a failed build fails the tests, never skips them."""
    return ensure_built("onnxruntime", onnxruntime_backend)


@pytest.fixture(scope="module")
def exports(checkpoint, tmp_path_factory):
    """Two exports of the fixture model: every ONNX file (FP32, FP16, INT8, plus TorchScript), and TensorRT."""
    folder = tmp_path_factory.mktemp("nvidia-onnxruntime")
    full = ExportPlan(frozenset({Format.ONNX, Format.TORCHSCRIPT}),
                      frozenset({Precision.FP32, Precision.FP16, Precision.INT8}), Target.BOTH)
    tensorrt = ExportPlan(frozenset({Format.ONNX}), frozenset({Precision.FP32}), Target.GPU,
                          options=ServingOptions(tensorrt=True))
    source = Checkpoint(checkpoint, "fixture")
    build(source, folder / "full", full, log=lambda _: None)
    build(source, folder / "tensorrt", tensorrt, log=lambda _: None)
    return {"full": folder / "full", "tensorrt": folder / "tensorrt"}


def generated_gpu_config(repository: Path) -> mc.ModelConfig:
    return text_format.Parse((repository / GPU_CONFIG).read_text(), mc.ModelConfig())


def switched_copy(repository: Path, destination: Path, config: mc.ModelConfig) -> Path:
    """A copy of ``repository`` whose ``configs/gpu.pbtxt`` of the model step is ``config``."""
    shutil.copytree(repository, destination, symlinks=True)
    (destination / GPU_CONFIG).write_text(render(config))
    return destination


@pytest.fixture(scope="module")
def texts(checkpoint, parity_texts):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    # Short texts of many lengths (several pad lengths), hard cases, and one text of three 512-token windows.
    return parity_texts[:40] + list(HARD_CASES.values()) + [text_with_tokens(tokenizer, 1200, seed=3)]


def serve(repository: Path, texts: list[str]) -> tuple[mc.ModelConfig, list[list[dict]]]:
    """Start Triton with ``--model-config-name=gpu``; the model step's loaded config and the entities of ``texts``
    (four texts per request, four requests in flight, so the dynamic batcher has equal shapes to group)."""
    with TritonServer(repository, free_ports(), config_name="gpu") as server:
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        loaded = raw.get_model_config(names.MODEL).config
        raw.close()
        with NerClient(server.grpc_url, batch_size=4, concurrency=4) as client:
            return loaded, client.predict(texts)


def pipeline_expected(pipe, text: str):
    windows = len(pipe.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) > 510
    return pipe(text, stride=128) if windows else pipe(text)


def entity_set(results: list[list[dict]]) -> set[tuple]:
    return {(i, e["entity_group"], e["start"], e["end"]) for i, found in enumerate(results) for e in found}


# Rehearsals on CPU of the GPU configs (export, model file replacing the generated one or None, precision): the
# config as generated, with only its instances, accelerators and threads switched to CPU.
VARIANTS = {
    "gpu-config-as-generated-on-cpu-fp16": ("full", None, "fp16"),
    "gpu-config-on-cpu-with-model.onnx-fp32": ("full", "model.onnx", "fp32"),
    "gpu-config-on-cpu-with-model_int8.onnx": ("full", "model_int8.onnx", "int8"),
    "tensorrt-config-on-cpu-fp32": ("tensorrt", None, "fp32"),
}


def test_every_case_is_named_a_rehearsal_on_cpu_and_listed_in_the_gpu_check_page():
    """No case here runs on a GPU: each says so in its name, and docs/gpu-check.md names it beside what only a GPU
    run proves."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "gpu-check.md").read_text()
    assert [case for case in VARIANTS if "-on-cpu-" not in case or f"`{case}`" not in page] == []


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_onnx_gpu_config_rehearsed_on_cpu_loads_in_nvidia_backend_and_answers(
        variant, nvidia_onnxruntime, exports, texts, pipelines, tmp_path):
    export, model_file, precision = VARIANTS[variant]
    if precision == "int8":
        texts = texts + agreement_corpus()
    generated = generated_gpu_config(exports[export])
    assert generated.backend == "onnxruntime"
    if model_file is None and precision == "fp16":
        assert generated.default_model_filename == "model_fp16.onnx"
    if export == "tensorrt":
        assert [a.name for a in generated.optimization.execution_accelerators.gpu_execution_accelerator] == [
            "tensorrt"]
    config = on_cpu(generated)
    if model_file:
        config.default_model_filename = model_file
    repository = switched_copy(exports[export], tmp_path / "repo", config)

    loaded, served = serve(repository, texts)

    assert loaded.backend == "onnxruntime" and loaded.default_model_filename == config.default_model_filename
    assert [g.kind for g in loaded.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert not loaded.optimization.execution_accelerators.gpu_execution_accelerator
    pipe = pipelines("simple")
    if precision == "fp32":
        for text, got in zip(texts, served, strict=True):
            assert_same(got, pipeline_expected(pipe, text), text)
    else:
        local = LocalNer(repository / names.MODEL / "1" / config.default_model_filename,
                         repository / names.TEXT_STEP / "1" / names.TOKENIZER_DIR)
        want = local.predict(texts)
        assert len(served) == len(want)
        if precision == "int8":
            agreement = entity_agreement(entity_set(want), entity_set(served))
            assert agreement.ok, agreement
        else:
            for text, got, expected in zip(texts, served, want, strict=True):
                assert_same(got, expected, text)
        with_pipeline = pipeline_agreement(served, [pipeline_expected(pipe, text) for text in texts])
        assert with_pipeline >= MIN_PIPELINE_AGREEMENT, f"{with_pipeline:.3f} of the texts as the pipeline finds"


def test_logits_dims_that_do_not_match_the_graph_are_refused_at_load(nvidia_onnxruntime, exports, tmp_path):
    """These tests can fail: the real backend checks the config against the graph, and ``logits`` declared
    ``[-1, -1]`` (complete shape ``[-1,-1,-1]`` with the batch) against the graph's ``[-1,-1,9]`` is refused at load;
    the launcher's error names the mismatch."""
    config = on_cpu(generated_gpu_config(exports["full"]))
    config.default_model_filename = "model.onnx"
    del config.output[0].dims[:]
    config.output[0].dims.extend([-1, -1])
    repository = switched_copy(exports["full"], tmp_path / "repo", config)
    with pytest.raises(ServerError, match=r"failed to load 'ner_model' version 1: .*tensor 'logits': the model "
                                          r"expects 3 dimensions \(shape \[-1,-1,9\]\) but the model configuration "
                                          r"specifies .*\[-1,-1,-1\]"):
        TritonServer(repository, free_ports(), config_name="gpu").start()


def test_a_config_needing_the_backend_is_refused_in_one_line_when_it_is_not_built(exports, monkeypatch):
    from triton_ner.server import installation

    monkeypatch.setattr(installation, "onnxruntime_backend", lambda: None)
    with pytest.raises(ServerError, match=r"^ner_model/configs/gpu.pbtxt needs NVIDIA's onnxruntime backend, "
                                          r"which is not built: run `make backends`$"):
        TritonServer(exports["full"], free_ports(), config_name="gpu").start()

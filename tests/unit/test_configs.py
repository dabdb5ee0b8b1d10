"""The committed config.pbtxt files are exactly what export/configs.py generates, and every variant hangs
together: tensors wired through the ensemble, GPU configs that NVIDIA's backends accept as written."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.configs import (Format, Precision, ServingOptions, Target, model_config, render, repository_configs,
                            variants)
from ner import names

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
ALL = variants({Format.ONNX, Format.TORCHSCRIPT}, {Precision.FP32, Precision.FP16, Precision.INT8}, Target.BOTH)


@pytest.mark.parametrize("relative", list(repository_configs()))
def test_committed_config_is_generated(relative):
    """Fails when export/configs.py and the committed file disagree: run `make configs` and commit."""
    assert (COMMITTED / relative).read_text() == render(repository_configs()[relative])


def test_nothing_else_is_committed_as_a_config():
    committed = {str(p.relative_to(COMMITTED)) for p in COMMITTED.rglob("*.pbtxt")}
    assert committed == set(repository_configs())


@pytest.mark.parametrize("relative", list(repository_configs()))
def test_committed_config_parses_as_model_config(relative):
    config = text_format.Parse((COMMITTED / relative).read_text(), mc.ModelConfig())
    assert config.name == relative.split("/")[0]


def test_every_variant_is_named_once():
    assert [v.config_name for v in ALL] == ["", "int8", "torchscript", "gpu", "gpu_torchscript"]
    assert [v.model_file for v in ALL] == ["model.onnx", "model_int8.onnx", "model.pt", "model_fp16.onnx", "model.pt"]


@pytest.mark.parametrize("config_name", ["", "int8", "torchscript", "gpu", "gpu_torchscript"])
def test_ensemble_steps_are_wired_to_existing_tensors(config_name):
    """As Triton resolves --model-config-name: configs/<name>.pbtxt if the model has one, else config.pbtxt."""
    files = repository_configs(ALL)

    def config(model):
        return files.get(f"{model}/configs/{config_name}.pbtxt") or files[f"{model}/config.pbtxt"]

    ensemble = config(names.ENSEMBLE)
    available = {t.name for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = config(step.model_name)
        assert set(step.input_map) == {t.name for t in model.input}, step.model_name
        assert set(step.input_map.values()) <= available, step.model_name
        assert set(step.output_map) <= {t.name for t in model.output}, step.model_name
        available |= set(step.output_map.values())
    assert {t.name for t in ensemble.output} <= available


def test_gpu_configs_use_nvidia_backends_on_gpu_with_batching_and_warmup():
    files = repository_configs(ALL)
    onnx, torchscript = files["ner_model/configs/gpu.pbtxt"], files["ner_model/configs/gpu_torchscript.pbtxt"]
    assert (onnx.backend, onnx.default_model_filename) == ("onnxruntime", "model_fp16.onnx")
    assert (torchscript.backend, torchscript.default_model_filename) == ("pytorch", "model.pt")
    for config in (onnx, torchscript):
        assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        assert list(config.dynamic_batching.preferred_batch_size) == [16, 32, 64, 128]
        assert config.dynamic_batching.default_queue_policy.max_queue_size == 1024
        assert [w.name for w in config.model_warmup] == ["1x16", "32x64", "8x512"]
        assert not any(i.allow_ragged_batch for i in config.input)  # these backends batch equal shapes only
    tokenizer = files["ner_tokenizer/configs/gpu.pbtxt"]
    assert tokenizer.parameters["pad_to_lengths"].string_value == "16,32,64,128,256,512"
    assert tokenizer.parameters["max_windows"].string_value == str(onnx.max_batch_size)


def test_tensorrt_fp16_accelerator_is_optional():
    gpu = next(v for v in ALL if v.config_name == "gpu")
    assert not model_config(gpu, ServingOptions()).optimization.execution_accelerators.gpu_execution_accelerator
    accelerator, = model_config(gpu, ServingOptions(tensorrt=True)).optimization.execution_accelerators \
        .gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"


def test_every_model_has_its_code_committed():
    for relative, config in repository_configs().items():
        if config.backend == "python":
            assert (COMMITTED / relative.split("/")[0] / "1" / "model.py").exists(), relative

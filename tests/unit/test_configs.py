"""The committed config.pbtxt files are exactly what export/configs.py generates, and every variant hangs
together: tensors wired through the ensemble, GPU configs that NVIDIA's backends accept as written."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_ner.core import names
from triton_ner.core.variants import Format, Precision, Target, exported
from triton_ner.export.configs import ServingOptions, model_config, on_cpu, render, repository_configs

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
ALL = exported(set(Format), set(Precision), Target.BOTH)
NAMES = ["", "int8", "torchscript", "bf16", "openvino", "openvino_bf16", "openvino_int8", "openvino_bf16_backend",
         "gpu", "gpu_torchscript", "cuda"]


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
    assert [v.config_name for v in ALL] == NAMES
    assert [v.model_file for v in ALL] == ["model.onnx", "model_int8.onnx", "model.pt", "model.pt", "model.xml",
                                           "model_bf16.xml", "model_int8.xml", "model_bf16.xml", "model_fp16.onnx",
                                           "model.pt", "model.pt"]
    assert [v.backend.value for v in ALL] == ["python"] * 7 + ["openvino", "onnxruntime", "pytorch", "python"]
    # What the runner applies when it loads the file: a cast, or OpenVINO's inference precision.
    assert [v.run_precision.value for v in ALL] == ["fp32", "fp32", "fp32", "bf16", "fp32", "bf16", "fp32", "bf16",
                                                    "fp32", "fp32", "fp16"]


def test_an_openvino_only_export_serves_the_ir_by_default():
    found = exported({Format.OPENVINO}, {Precision.FP32, Precision.BF16, Precision.INT8}, Target.BOTH)
    assert [(v.config_name, v.model_file, v.run_precision.value) for v in found] == [
        ("", "model.xml", "fp32"), ("openvino_bf16", "model_bf16.xml", "bf16"),
        ("openvino_int8", "model_int8.xml", "fp32"), ("openvino_bf16_backend", "model_bf16.xml", "bf16")]


@pytest.mark.parametrize("config_name", NAMES)
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
        assert not config.dynamic_batching.preferred_batch_size  # the largest batch available is the best one
        assert config.dynamic_batching.default_queue_policy.max_queue_size == 1024
        assert [w.name for w in config.model_warmup] == ["1x16", "32x64", "8x512"]
        assert not any(i.allow_ragged_batch for i in config.input)  # these backends batch equal shapes only
        assert list(config.output[0].dims) == [-1, 9]  # [batch, tokens, labels]: outputs are compared exactly
    assert torchscript.parameters["DISABLE_OPTIMIZED_EXECUTION"].string_value == "true"
    for name in ("gpu", "gpu_torchscript"):
        text = files[f"ner_text/configs/{name}.pbtxt"]
        model = files[f"ner_model/configs/{name}.pbtxt"]
        assert text.parameters["pad_lengths"].string_value == "16,32,64,128,256,512"
        assert text.parameters["max_rows_per_call"].string_value == str(model.max_batch_size)
        assert text.parameters["model_inputs"].string_value == ",".join(t.name for t in model.input)
        assert text.parameters["model_output"].string_value == model.output[0].name
        assert text.parameters["max_tokens_per_call"].string_value == "0"  # a call of max_rows_per_call rows
    for name in ("gpu", "gpu_torchscript", "cuda"):
        assert files[f"{names.TEXT_STEP}/configs/{name}.pbtxt"].instance_group[0].count == 4, name
        assert files[f"{names.MODEL}/configs/{name}.pbtxt"].instance_group[0].count == 2, name
    apart = repository_configs(ALL, ServingOptions(text_instances=3, gpu_text_instances=5))
    assert apart[f"{names.TEXT_STEP}/configs/cuda.pbtxt"].instance_group[0].count == 5
    assert apart[f"{names.TEXT_STEP}/config.pbtxt"].instance_group[0].count == 3


def test_every_variant_keeps_the_ensemble_interface_and_batches_requests_at_the_text_step():
    """Clients send TEXT [n] to the non-batching ensemble; its one step, the text step, takes it as [1, n] (ragged,
    batching), so one execute takes every queued request, and calls the model step itself."""
    files = repository_configs(ALL)
    ensemble = files["ner/config.pbtxt"]
    assert not [f for f in files if f.startswith("ner/configs/")]  # one ensemble for every variant
    assert ensemble.max_batch_size == 0 and list(ensemble.input[0].dims) == [-1]
    assert list(ensemble.output[0].dims) == [-1]
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [names.TEXT_STEP]
    assert ([i.name for i in ensemble.input], [o.name for o in ensemble.output]) == ([names.TEXT], [names.ENTITIES])
    steps = [config for relative, config in files.items() if config.name == names.TEXT_STEP]
    # config.pbtxt, one for each of gpu, gpu_torchscript and cuda, and one for openvino_bf16_backend
    assert len(steps) == 1 + 3 + 1
    for config in steps:
        assert config.max_batch_size == ServingOptions().text_batch_size
        assert all(t.allow_ragged_batch for t in config.input), config.name
        assert not config.dynamic_batching.max_queue_delay_microseconds  # take what is queued, wait for nothing
    python = files["ner_text/config.pbtxt"]
    assert python.parameters["max_tokens_per_call"].string_value == str(ServingOptions().max_tokens_per_run)
    assert python.parameters["max_rows_per_call"].string_value == str(files["ner_model/config.pbtxt"].max_batch_size)


def test_nvidias_openvino_backend_runs_on_cpu_in_bf16_fed_whole_length_groups():
    files = repository_configs(ALL)
    model = files["ner_model/configs/openvino_bf16_backend.pbtxt"]
    assert (model.backend, model.default_model_filename) == ("openvino", "model_bf16.xml")
    assert {g.kind for g in model.instance_group} == {mc.ModelInstanceGroup.KIND_CPU}
    assert model.parameters["INFERENCE_PRECISION_HINT"].string_value == "bf16"
    assert not model.dynamic_batching.max_queue_delay_microseconds  # as the CPU runner: the text step pools
    text = files["ner_text/configs/openvino_bf16_backend.pbtxt"]
    assert text.parameters["max_rows_per_call"].string_value == str(model.max_batch_size)
    assert text.parameters["max_tokens_per_call"].string_value == "0"  # the backend takes a call whole


def test_cuda_variant_runs_the_torchscript_model_on_the_gpu_in_the_python_runner():
    cuda = repository_configs(ALL)["ner_model/configs/cuda.pbtxt"]
    assert (cuda.backend, cuda.instance_group[0].kind) == ("python", mc.ModelInstanceGroup.KIND_GPU)
    assert cuda.parameters["model_file"].string_value == "model.pt"
    assert cuda.parameters["precision"].string_value == "fp16"
    # A CUDA graph per padded shape of at most gpu_max_batch_size rows; no wait for a batch: the text step pools.
    assert cuda.parameters["max_rows_per_graph"].string_value == str(ServingOptions().gpu_max_batch_size)
    assert not cuda.dynamic_batching.max_queue_delay_microseconds
    no_graphs = repository_configs(ALL, ServingOptions(cuda_graphs=False))["ner_model/configs/cuda.pbtxt"]
    assert no_graphs.parameters["max_rows_per_graph"].string_value == "0"
    assert repository_configs(ALL)["ner_model/config.pbtxt"].parameters["max_rows_per_graph"].string_value == "0"
    bf16 = repository_configs(ALL)["ner_model/configs/bf16.pbtxt"]
    assert (bf16.instance_group[0].kind, bf16.parameters["precision"].string_value) == (
        mc.ModelInstanceGroup.KIND_CPU, "bf16")


def test_tensorrt_fp16_accelerator_is_optional():
    gpu = next(v for v in ALL if v.config_name == "gpu")
    assert not model_config(gpu, ServingOptions()).optimization.execution_accelerators.gpu_execution_accelerator
    accelerator, = model_config(gpu, ServingOptions(tensorrt=True)).optimization.execution_accelerators \
        .gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    # one optimization profile covering every shape the tokenizer sends, so no engine is rebuilt at run time
    assert accelerator.parameters["trt_profile_min_shapes"] == "input_ids:1x16,attention_mask:1x16"
    assert accelerator.parameters["trt_profile_max_shapes"] == "input_ids:128x512,attention_mask:128x512"


def test_tensorrt_runs_the_plain_fp32_graph():
    """TensorRT does not run ONNX Runtime's fused operators; it makes its own FP16 engines from the FP32 graph."""
    gpu, = [v for v in exported({Format.ONNX}, {Precision.FP16}, Target.GPU, tensorrt=True) if v.config_name == "gpu"]
    assert gpu.model_file == "model.onnx"


def test_on_cpu_switches_only_instance_kind_and_accelerators():
    gpu = next(v for v in ALL if v.config_name == "gpu")
    config = model_config(gpu, ServingOptions(tensorrt=True))
    switched = on_cpu(config, threads=2)
    assert switched.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert not switched.HasField("optimization")
    assert switched.parameters["intra_op_thread_count"].string_value == "2"
    for field in ("input", "output", "dynamic_batching", "model_warmup", "max_batch_size", "default_model_filename"):
        assert getattr(switched, field) == getattr(config, field), field


def test_every_model_has_its_code_committed():
    for relative, config in repository_configs().items():
        if config.backend == "python":
            assert (COMMITTED / relative.split("/")[0] / "1" / "model.py").exists(), relative

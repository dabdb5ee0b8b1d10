"""Export: the repository it writes, the ONNX proof, and its one-line refusals."""

import json
import subprocess
import sys
from dataclasses import asdict
from hashlib import sha256

import pytest

from triton_ner.core import names
from triton_ner.core.runners import load_runner
from triton_ner.core.variants import MODEL_FILES, Format, Precision
from triton_ner.export.assemble import build
from triton_ner.export.configs import ServingOptions, render, repository_configs
from triton_ner.export.convert import export_onnx, export_torchscript, load_model, prove_logits
from triton_ner.export.model_io import check_config_against_model
from triton_ner.export.source import Checkpoint, ExportError, HubUnreachable, resolve


@pytest.fixture(scope="module")
def full_export(checkpoint, tmp_path_factory):
    """The fixture exported in every format and every precision, twice, each by its own `python -m triton_ner.export`
    (TorchScript names traced classes with a per-process counter, so a rerun means a new process)."""
    first, second = (tmp_path_factory.mktemp(name) / "repo" for name in ("first", "second"))
    for output in (first, second):
        subprocess.run([sys.executable, "-m", "triton_ner.export", "--model", "fixture", "--output", str(output),
                        "--format", "all", "--precision", "fp16", "--precision", "int8", "--precision", "bf16"],
                       check=True, capture_output=True, timeout=300)
    return first, second


def test_repository_is_complete_and_manifest_hashes_match(repository):
    manifest = json.loads((repository / "manifest.json").read_text())
    assert manifest["proofs"]["model.onnx"]["max_abs_logit_diff"] <= 1e-4
    assert manifest["labels"] == ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    for relative, digest in manifest["artifacts"].items():
        assert sha256((repository / relative).read_bytes()).hexdigest() == digest, relative
    assert f"{names.MODEL}/1/{MODEL_FILES[Format.ONNX, Precision.FP32]}" in manifest["artifacts"]
    for relative, config in repository_configs(options=ServingOptions(num_labels=len(manifest["labels"]))).items():
        assert (repository / relative).read_text() == render(config)


def test_onnx_graph_has_the_declared_names(repository):
    import onnx

    graph = onnx.load(str(repository / names.MODEL / "1" / MODEL_FILES[Format.ONNX, Precision.FP32])).graph
    assert [i.name for i in graph.input] == [names.INPUT_IDS, names.ATTENTION_MASK]
    assert [o.name for o in graph.output] == [names.LOGITS]
    for tensor in list(graph.input) + list(graph.output):
        batch, sequence = tensor.type.tensor_type.shape.dim[:2]
        assert batch.dim_param and sequence.dim_param  # dynamic axes, not fixed sizes


def test_proof_fails_when_onnx_differs_from_pytorch(checkpoint, tmp_path):
    import torch
    from transformers import AutoTokenizer

    model, tokenizer = load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    onnx_path = export_onnx(model, tokenizer, tmp_path / "model.onnx")
    assert not model.training  # the exporter restores modes; dropout must stay off for the proof
    assert prove_logits(model, tokenizer, load_runner(onnx_path)).ok
    with torch.no_grad():
        model.classifier.bias += 1e-3  # the graph no longer matches the model
    assert not prove_logits(model, tokenizer, load_runner(onnx_path)).ok


def test_torchscript_runs_shapes_other_than_the_tracing_example(checkpoint, tmp_path):
    import torch
    from transformers import AutoTokenizer

    model, tokenizer = load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    run = load_runner(export_torchscript(model, tokenizer, tmp_path / "model.pt"))  # as the CPU model step runs it
    for batch, length in ((1, 1), (3, 300), (7, 512)):  # the example was 2 texts of 13 tokens
        ids = torch.randint(5, len(tokenizer), (batch, length))
        mask = torch.ones_like(ids)
        mask[0, length // 2:] = 0
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask).logits.numpy()
        assert abs(run(ids.numpy(), mask.numpy()) - want).max() <= 1e-4, (batch, length)


def test_torchscript_is_traced_with_fused_attention(checkpoint, full_export, tmp_path):
    """The exported file calls PyTorch's scaled_dot_product_attention (fused kernels on a GPU) and gives the
    logits of a trace with transformers' eager attention; the model keeps its own attention for the ONNX export."""
    import torch
    from transformers import AutoTokenizer

    from triton_ner.export import convert

    assert convert.torchscript_attention(full_export[0] / names.MODEL / "1" / "model.pt") == "sdpa"
    model, tokenizer = load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    eager = convert.export_torchscript(model, tokenizer, tmp_path / "eager.pt", attention="eager")
    assert convert.torchscript_attention(eager) == "eager" and model.config._attn_implementation == "eager"
    ids = torch.randint(5, len(tokenizer), (4, 40))
    mask = torch.ones_like(ids)
    mask[1:, 20:] = 0
    sdpa = load_runner(full_export[0] / names.MODEL / "1" / "model.pt")(ids.numpy(), mask.numpy())
    want = load_runner(eager)(ids.numpy(), mask.numpy())
    assert abs(sdpa - want)[mask.numpy().astype(bool)].max() <= 1e-4


def test_full_export_proves_every_artifact(full_export):
    manifest = json.loads((full_export[0] / "manifest.json").read_text())
    proofs = manifest["proofs"]
    assert proofs["model.onnx"]["max_abs_logit_diff"] <= 1e-4 and proofs["model.onnx"]["optimized"]
    assert proofs["model.pt"]["max_abs_logit_diff"] <= 1e-4
    assert proofs["model_int8.onnx"]["entity_agreement"] >= 0.99
    assert proofs["model_fp16.onnx"]["entity_agreement"] >= 0.99
    assert proofs["model.pt:bf16"]["entity_agreement"] >= 0.99
    assert proofs["model.pt:fp16"]["entity_agreement"] >= 0.99
    assert proofs["model.xml"]["max_abs_logit_diff"] <= 1e-4  # OpenVINO IR, run in FP32
    assert proofs["model_bf16.xml:bf16"]["entity_agreement"] >= 0.99  # FP16 weights, run in BF16
    assert proofs["model_int8.xml"]["entity_agreement"] >= 0.99  # NNCF's static INT8
    assert manifest["config_names"] == ["config", "int8", "torchscript", "bf16", "openvino", "openvino_bf16",
                                        "openvino_int8", "openvino_bf16_backend", "gpu", "gpu_torchscript", "cuda"]


def test_each_lower_precision_is_held_against_the_fp32_file_of_its_own_format(checkpoint, tmp_path, monkeypatch):
    """ONNX INT8 against ONNX FP32, OpenVINO INT8 against the OpenVINO IR: each FP32 file's entities are found once
    and used for its own format only."""
    from triton_ner.export import convert
    from triton_ner.export.assemble import ExportPlan

    found = []
    original = convert.corpus_entities
    monkeypatch.setattr(convert, "corpus_entities", lambda path, *args: found.append(path.name) or original(
        path, *args))
    build(Checkpoint(checkpoint, "fixture"), tmp_path / "repo",
          ExportPlan(frozenset({Format.ONNX, Format.OPENVINO}), frozenset({Precision.FP32, Precision.INT8})),
          log=lambda _: None)
    assert sorted(found) == ["model.onnx", "model.xml", "model_int8.onnx", "model_int8.xml"]
    proofs = json.loads((tmp_path / "repo" / names.MANIFEST).read_text())["proofs"]
    assert (proofs["model_int8.onnx"]["reference"], proofs["model_int8.xml"]["reference"]) == ("model.onnx",
                                                                                              "model.xml")
    assert proofs["model.onnx"]["reference"].startswith("PyTorch")


def _halving_int8(monkeypatch):
    """A broken INT8 quantization, as on a CPU where rounding flips many near-ties: its files find every other
    entity of FP32's."""
    from triton_ner.export import convert

    original = convert.corpus_entities

    def entities(path, *args):
        found = original(path, *args)
        return set(sorted(found)[::2]) if "int8" in path.name else found

    monkeypatch.setattr(convert, "corpus_entities", entities)


def test_a_failed_proof_names_the_artifact_its_reference_the_figure_and_the_bound(checkpoint, tmp_path,
                                                                                  monkeypatch):
    from triton_ner.export.assemble import ExportPlan
    from triton_ner.export.source import EntitiesDisagree

    _halving_int8(monkeypatch)
    with pytest.raises(EntitiesDisagree) as failed:
        build(Checkpoint(checkpoint, "fixture"), tmp_path / "repo",
              ExportPlan(frozenset({Format.ONNX}), frozenset({Precision.FP32, Precision.INT8})), log=lambda _: None)
    error = failed.value
    assert (error.artifact, error.reference, error.bound) == ("model_int8.onnx", "the entities of model.onnx",
                                                             "≥ 99%")
    assert error.figure.endswith("identical") and "matrix instructions" in str(error)
    assert not (tmp_path / "repo").exists()  # nothing half-written


def test_with_keep_going_a_failed_lower_precision_is_left_out_and_recorded(checkpoint, tmp_path, monkeypatch):
    """What the benchmark exports with: the INT8 files that fail their proof are removed with their variants, the
    manifest says why, and every other variant is written."""
    from triton_ner.export.assemble import ExportPlan

    _halving_int8(monkeypatch)
    output = tmp_path / "repo"
    manifest = build(Checkpoint(checkpoint, "fixture"), output,
                     ExportPlan(frozenset({Format.ONNX, Format.OPENVINO}),
                                frozenset({Precision.FP32, Precision.INT8, Precision.BF16}), keep_going=True),
                     log=lambda _: None)
    refused = manifest["refused"]
    assert {key: entry["config_names"] for key, entry in refused.items()} == {
        "model_int8.onnx": ["int8"], "model_int8.xml": ["openvino_int8"]}
    assert all("identical against the entities of model" in entry["error"] for entry in refused.values())
    assert "int8" not in manifest["config_names"] and "openvino_int8" not in manifest["config_names"]
    assert "openvino_bf16" in manifest["config_names"]
    version = output / names.MODEL / "1"
    assert not (version / "model_int8.onnx").exists() and not (version / "model_int8.xml").exists()
    assert not (version / "model_int8.bin").exists() and (version / "model_bf16.xml").exists()
    assert not list(output.glob("*/configs/*int8.pbtxt"))


def test_torchscript_file_has_no_device_constant(full_export, checkpoint, tmp_path):
    """transformers' mask code traced as it is leaves prim::Constant[value="cpu"] in the graph (the mask would stay
    on the CPU of a GPU server); the exported file has none, and the inspection does see one in such a graph."""
    import torch
    from transformers import AutoTokenizer

    from triton_ner.export.convert import LogitsOnly, _quiet, torchscript_constants

    assert torchscript_constants(full_export[0] / names.MODEL / "1" / "model.pt") == []
    model, tokenizer = load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    sample = tokenizer(["Berlin", "Angela Merkel met Emmanuel Macron"], padding=True, return_tensors="pt")
    with _quiet(), torch.no_grad():  # tracing is deprecated in PyTorch: its warning is not the point here
        naive = torch.jit.trace(LogitsOnly(model).eval(), (sample["input_ids"], sample["attention_mask"]))
        torch.jit.save(naive, str(tmp_path / "naive.pt"))
    assert torchscript_constants(tmp_path / "naive.pt") == ["cpu"]


def test_torchscript_constants_stay_finite_in_half_precision(full_export, checkpoint, tmp_path, monkeypatch):
    """Cast to FP16 or BF16, the traced module computes with its constants in that dtype (CUDA's fuser does, after
    TorchScript's profiling runs): the mask's lowest float32 became -inf there and 0 * -inf gave NaN at every
    attended position. The exported file has no such constant, its mask value is exact in every dtype, and the
    inspection does see the lowest float32 in a file traced with it."""
    import torch
    from transformers import AutoTokenizer

    from triton_ner.export import convert

    assert convert.torchscript_overflowing_constants(full_export[0] / names.MODEL / "1" / "model.pt") == []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert torch.tensor(convert.MASKED, dtype=dtype).item() == convert.MASKED
    monkeypatch.setattr(convert, "MASKED", torch.finfo(torch.float32).min)
    old = convert.export_torchscript(load_model(checkpoint), AutoTokenizer.from_pretrained(checkpoint),
                                     tmp_path / "lowest.pt")
    assert convert.torchscript_overflowing_constants(old) == [torch.finfo(torch.float32).min]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_torchscript_file_runs_cast_to_lower_precision(full_export, checkpoint, precision):
    """The mask follows the weights' dtype (type_as), so the one file runs in BF16 and FP16 too."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    run = load_runner(full_export[0] / names.MODEL / "1" / "model.pt", precision=precision)
    enc = tokenizer(["My name is Wolfgang and I live in Berlin", "OK"], padding=True, return_tensors="np")
    with torch.no_grad():
        want = load_model(checkpoint)(input_ids=torch.from_numpy(enc["input_ids"]),
                                      attention_mask=torch.from_numpy(enc["attention_mask"])).logits.numpy()
    got = run(enc["input_ids"], enc["attention_mask"])
    real = enc["attention_mask"].astype(bool)
    assert got.dtype == want.dtype and abs(got - want)[real].max() < 0.1
    assert (got.argmax(-1) == want.argmax(-1))[real].all()


def test_export_is_reproducible(full_export):
    first, second = full_export
    assert (first / "manifest.json").read_bytes() == (second / "manifest.json").read_bytes()
    for path in first.rglob("*.pbtxt"):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()


def test_every_model_config_names_tensors_of_its_model_file(full_export):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repository = full_export[0]
    for path in [repository / names.MODEL / "config.pbtxt", *(repository / names.MODEL / "configs").glob("*")]:
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        model_file = config.default_model_filename or config.parameters["model_file"].string_value
        check_config_against_model(config, repository / names.MODEL / "1" / model_file)
        wrong = mc.ModelConfig()
        wrong.CopyFrom(config)
        wrong.input[0].name = "input_idz"
        with pytest.raises(ExportError, match="'input_idz' is not in"):
            check_config_against_model(wrong, repository / names.MODEL / "1" / model_file)


@pytest.mark.parametrize(("dims", "message"), [
    ([-1, -1], r"has shape \[-1, -1, 9\] in model_fp16.onnx but the config declares \[-1, -1, -1\]"),  # the bug
    ([-1, 8], r"declares \[-1, -1, 8\]"),
    ([9], r"declares \[-1, 9\]"),
])
def test_dims_check_refuses_what_nvidias_backend_refuses(full_export, dims, message):
    """The GPU config once declared logits [-1, -1]: NVIDIA's onnxruntime backend compares outputs exactly and
    refused it at load. The exporter now compares dims as that backend does."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repository = full_export[0]
    config = text_format.Parse((repository / names.MODEL / "configs" / "gpu.pbtxt").read_text(), mc.ModelConfig())
    del config.output[0].dims[:]
    config.output[0].dims.extend(dims)
    with pytest.raises(ExportError, match=message):
        check_config_against_model(config, repository / names.MODEL / "1" / config.default_model_filename)
    config.output[0].data_type = mc.TYPE_FP16
    with pytest.raises(ExportError, match="TYPE_FP16 in the config but TYPE_FP32"):
        check_config_against_model(config, repository / names.MODEL / "1" / config.default_model_filename)


def test_existing_export_needs_force(checkpoint, repository):
    before = (repository / "manifest.json").read_text()
    with pytest.raises(ExportError, match="--force"):
        build(Checkpoint(checkpoint, "fixture"), repository, log=lambda _: None)
    assert (repository / "manifest.json").read_text() == before


def test_unwritable_output_is_refused(checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write"):
        build(Checkpoint(checkpoint, "fixture"), blocker / "repo", log=lambda _: None)


def test_folder_without_weights_is_refused(checkpoint, tmp_path):
    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    with pytest.raises(ExportError, match="no weights"):
        resolve(str(tmp_path))


def test_checkpoint_that_is_not_token_classification_is_refused(checkpoint, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(checkpoint).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(tmp_path)
    with pytest.raises(ExportError, match="not a token-classification checkpoint"):
        resolve(str(tmp_path))


def test_unreachable_hub_is_one_clear_error_or_the_fixture(monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused, online or not
    with pytest.raises(HubUnreachable, match="cannot reach the Hugging Face Hub"):
        resolve("dslim/distilbert-NER")
    assert resolve("dslim/distilbert-NER", fallback_to_fixture=True).source == "fixture"
    assert capsys.readouterr().err.count("\n") == 1  # one warning line


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "not/a/model/id"], "neither a local folder nor a valid Hub model id"),
    (["--model", "fixture", "--max-batch-size", "0"], "Invalid value"),
    (["--model", "fixture", "--precision", "fp16", "--target", "cpu"], "fp16 is a GPU precision"),
    (["--model", "fixture", "--precision", "int8", "--format", "torchscript"], "int8 is an ONNX or OpenVINO variant"),
    (["--model", "fixture", "--precision", "bf16"], "bf16 runs the TorchScript model"),
    (["--model", "fixture", "--precision", "fp16", "--tensorrt"], "--tensorrt builds FP16 engines"),
    (["--model", "fixture", "--format", "tensorflow"], "--format 'tensorflow' is not one of: onnx, torchscript"),
])
def test_cli_errors_are_one_line(args, message):
    result = subprocess.run([sys.executable, "-m", "triton_ner.export", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("option", "value"), [
    ("--max-text-bytes", "0"), ("--max-batch-size", "-4"), ("--max-tokens-per-request", "0"),
    ("--max-queue-size", "0"), ("--text-queue-size", "-1"), ("--queue-timeout", "0"), ("--queue-timeout", "soon"),
    ("--cpu-instances", "many"), ("--cpu-instances", "1.5"), ("--instances", "0"), ("--gpu-text-instances", "0"),
])
def test_a_bad_serving_limit_is_a_usage_error_naming_the_option(option, value, monkeypatch):
    from typer.testing import CliRunner

    from triton_ner.export import __main__ as command
    from triton_ner.export import assemble

    monkeypatch.setattr(assemble, "build", lambda *args, **kwargs: pytest.fail("exported despite a bad value"))
    result = CliRunner().invoke(command.app, ["--model", "fixture", option, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_fixture_training_is_deterministic(checkpoint, tmp_path):
    from triton_ner.export.fixture import train

    again = train(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_bytes() == (checkpoint / "tokenizer.json").read_bytes()


def test_fixture_model_finds_the_seed_entities(pipelines):
    entities = pipelines()("My name is Wolfgang and I live in Berlin")
    assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "Wolfgang"), ("LOC", "Berlin")]


def test_the_serving_limits_reach_the_configs_from_the_command_line(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    output = tmp_path / "repository"
    subprocess.run([sys.executable, "-m", "triton_ner.export", "--model", "fixture", "--output", str(output),
                    "--target", "both", "--max-text-bytes", "1000", "--max-tokens-per-request", "777",
                    "--max-batch-size", "64",
                    "--max-queue-size", "5", "--text-queue-size", "6", "--queue-timeout", "2.5",
                    "--cpu-instances", "3", "--instances", "2", "--gpu-text-instances", "7"],
                   check=True, capture_output=True, timeout=300)

    def config(model: str, name: str = "config") -> mc.ModelConfig:
        path = output / model / (f"configs/{name}.pbtxt" if name != "config" else "config.pbtxt")
        return text_format.Parse(path.read_text(), mc.ModelConfig())

    tokenizer = config(names.TEXT_STEP)
    assert tokenizer.parameters["max_text_bytes"].string_value == "1000"
    assert tokenizer.parameters["max_tokens_per_request"].string_value == "777"
    assert tokenizer.parameters["max_windows"].string_value == "64"
    assert tokenizer.dynamic_batching.default_queue_policy.max_queue_size == 6
    model = config(names.MODEL)
    assert model.dynamic_batching.default_queue_policy.max_queue_size == 5
    assert model.dynamic_batching.default_queue_policy.default_timeout_microseconds == 2_500_000
    assert model.instance_group[0].count == 3
    assert config(names.MODEL, "gpu").instance_group[0].count == 2
    assert config(names.TEXT_STEP, "gpu").instance_group[0].count == 7
    recorded = json.loads((output / names.MANIFEST).read_text())["serving_options"]
    assert recorded == {**asdict(ServingOptions()), "max_text_bytes": 1000, "max_tokens_per_request": 777,
                        "max_batch_size": 64, "max_queue_size": 5, "text_queue_size": 6, "queue_timeout_s": 2.5,
                        "cpu_instances": 3, "instances": 2, "gpu_text_instances": 7}


def test_a_cached_export_is_reused_while_current_and_redone_when_a_variant_is_missing(checkpoint, tmp_path):
    from triton_ner_loadtest.exports import cached_export

    output = tmp_path / "cache"
    cached_export(checkpoint, output, log=lambda _: None)
    written = (output / "manifest.json").stat().st_mtime_ns
    assert cached_export(checkpoint, output, variants=("gpu",), log=lambda _: None) == output
    assert (output / "manifest.json").stat().st_mtime_ns == written  # reused
    cached_export(checkpoint, output, variants=("int8",), log=lambda _: None)  # not exported by default: again
    assert (output / "manifest.json").stat().st_mtime_ns != written


def test_a_cached_export_whose_configs_this_tree_would_write_otherwise_is_redone(checkpoint, tmp_path):
    """An export made with other serving options (here, as an older tree's default: 8 text-step processes on GPU)
    is not reused: a benchmark would measure configs the tree no longer writes."""
    from triton_ner_loadtest.exports import cached_export

    output = tmp_path / "cache"
    cached_export(checkpoint, output, log=lambda _: None)
    config = output / "ner_text" / "configs" / "gpu.pbtxt"
    config.write_text(config.read_text().replace("count: 4", "count: 8"))
    written = (output / "manifest.json").stat().st_mtime_ns
    cached_export(checkpoint, output, log=lambda _: None)
    assert (output / "manifest.json").stat().st_mtime_ns != written
    assert "count: 4" in config.read_text()

"""The profile's categories and the null model step's config: what the serving path's measurements rest on."""

from __future__ import annotations

import pytest

from triton_ner.core import names
from triton_ner.core.variants import GPU, Format, default
from triton_ner.export.configs import ServingOptions, model_config, parse, text_config, write_configs
from triton_ner_loadtest.ceiling import with_null_model_step
from triton_ner_loadtest.profile import NATIVE, WAITING, Part, py_spy_samples, stack_category

EXECUTE = "TritonPythonModel.execute (model.py:64)"


@pytest.mark.parametrize(("frames", "category"), [
    ([EXECUTE, "entities_of_requests (triton_ner/core/text_step.py:46)", "prepare_pool (tokenization.py:191)",
      "encode (triton_ner/core/tokenization.py:104)"], "tokenization"),
    # The model call made inside the planner is the model call's; the planner's own lines are the planner's.
    ([EXECUTE, "run_pooled (length_groups.py:91)", "run_pooled.<locals>.call (length_groups.py:64)",
      "model_runner.<locals>.run (triton_ner/python_backend.py:96)"], "the model call (BLS)"),
    ([EXECUTE, "run_pooled (length_groups.py:88)"], "planning the model calls"),
    ([EXECUTE, "run_pooled (length_groups.py:91)", "model_runner.<locals>.run (triton_ner/python_backend.py:96)",
      "_exec (triton_ner/python_backend.py:112)"], WAITING),
    ([EXECUTE, "_response (model.py:74)", "to_json (aggregation.py:336)"], "JSON"),
    ([EXECUTE, "run_requests (model_runs.py:105)", "onnx_runner.<locals>.run (runners.py:40)",
      "Session.run (onnxruntime_inference_collection.py:406)"], "the runner (the model)"),
    ([EXECUTE], "execute, other"),
    ([""], NATIVE),
    (["<module> (gc.py:1)"], "other Python"),
])
def test_a_sample_belongs_to_the_innermost_category_its_stack_reaches(frames, category):
    assert stack_category(frames) == category


def test_py_spy_raw_samples_are_counted_by_category(tmp_path):
    raw = tmp_path / "ner_text-1.txt"
    raw.write_text(f"{EXECUTE};prepare_pool (t.py:1) 30\n 10\n{EXECUTE};aggregate_pooled (a.py:2) 60\n")
    samples = py_spy_samples(raw)
    assert samples == {"tokenization": 30, NATIVE: 10, "aggregation": 60}
    rows = Part("ner_text", 0.5, samples).rows()
    assert rows[0] == ("aggregation", 0.6, pytest.approx(0.3))
    assert sum(ms or 0 for _, _, ms in rows) == pytest.approx(0.5)
    # A wait gets a share of the samples and none of the CPU time.
    waits = Part("ner_text", 0.5, samples | {WAITING: 100}).rows()
    assert waits[0] == (WAITING, 0.5, None) and sum(ms or 0 for _, _, ms in waits) == pytest.approx(0.5)


def test_the_null_model_step_is_the_python_step_with_the_null_runner_and_nothing_else_changed(tmp_path):
    options = ServingOptions()
    config = model_config(default(Format.ONNX), options)
    write_configs(tmp_path, {f"{names.MODEL}/config.pbtxt": config,
                             f"{names.TEXT_STEP}/configs/gpu.pbtxt": text_config(options, GPU)})
    assert with_null_model_step(tmp_path) == "null-model"
    null = parse((tmp_path / names.MODEL / "configs" / "null-model.pbtxt").read_text())
    assert null.parameters["model_file"].string_value == names.NULL_MODEL_FILE
    null.parameters["model_file"].string_value = config.parameters["model_file"].string_value
    assert null == config
    # Under a GPU config, the text step as that config has it.
    assert with_null_model_step(tmp_path, "gpu") == "null-model-gpu"
    assert ((tmp_path / names.TEXT_STEP / "configs" / "null-model-gpu.pbtxt").read_text()
            == (tmp_path / names.TEXT_STEP / "configs" / "gpu.pbtxt").read_text())
    write_configs(tmp_path, {f"{names.MODEL}/config.pbtxt": model_config(GPU, options)})
    with pytest.raises(ValueError, match="not the Python-backend model step's config"):
        with_null_model_step(tmp_path)

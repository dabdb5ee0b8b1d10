"""The export's list of proven steps (export/steps.py), planned without running: what each file is proven against,
and that every variant a plan serves has a proof."""

import pytest

from triton_ner.core.variants import Format, Precision, Target
from triton_ner.export.assemble import ExportPlan
from triton_ner.export.configs import ServingOptions
from triton_ner.export.steps import PLAIN_ONNX, plan_steps, proof_key

ALL_FORMATS = frozenset(Format)
ALL_PRECISIONS = frozenset(Precision)


def _plan(formats=ALL_FORMATS, precisions=ALL_PRECISIONS, **settings) -> ExportPlan:
    return ExportPlan(frozenset(formats), frozenset(precisions), Target.BOTH, **settings)


def test_each_lower_precision_is_held_against_the_fp32_file_of_its_own_format():
    references = {s.key: s.reference for s in plan_steps(None, None, _plan())}
    assert references == {
        PLAIN_ONNX: None, "model.xml": None, "model.onnx": None, "model.pt": None,
        "model_bf16.xml:bf16": "model.xml", "model_int8.xml": "model.xml",
        "model_fp16.onnx": "model.onnx", "model_int8.onnx": "model.onnx",
        "model.pt:bf16": "model.pt", "model.pt:fp16": "model.pt"}


def test_a_step_knows_the_precision_of_its_file_not_only_the_one_it_runs_in():
    held = {s.key: (s.precision, s.run_in) for s in plan_steps(None, None, _plan())}
    assert held["model_int8.xml"] == held["model_int8.onnx"] == (Precision.INT8, Precision.FP32)
    assert held["model_bf16.xml:bf16"] == held["model.pt:bf16"] == (Precision.BF16, Precision.BF16)


@pytest.mark.parametrize("formats", [{Format.ONNX}, {Format.TORCHSCRIPT}, {Format.ONNX, Format.OPENVINO},
                                     {Format.ONNX, Format.TORCHSCRIPT}, ALL_FORMATS])
@pytest.mark.parametrize("optimize", [True, False])
def test_every_variant_a_plan_serves_has_a_proof_and_the_intermediate_is_never_served(formats, optimize):
    plan = _plan(formats, optimize=optimize)
    planned = plan_steps(None, None, plan)
    proven = {s.key for s in planned if not s.intermediate}
    assert {proof_key(v.model_file, v.run_precision) for v in plan.variants} <= proven
    assert all(s.file != PLAIN_ONNX for s in planned if not s.intermediate)
    assert [s.key for s in planned].count("model.onnx") == (Format.ONNX in formats)


def test_onnx_is_optimized_with_the_plain_graph_as_fallback_unless_tensorrt_fuses_it():
    by_key = {s.key: s for s in plan_steps(None, None, _plan({Format.ONNX}))}
    assert by_key["model.onnx"].fallback is not None and PLAIN_ONNX in by_key
    tensorrt = {s.key: s for s in plan_steps(None, None, _plan({Format.ONNX}, options=ServingOptions(tensorrt=True)))}
    assert tensorrt["model.onnx"].fallback is None and PLAIN_ONNX not in tensorrt
    assert "model_fp16.onnx" not in tensorrt  # TensorRT makes its own FP16 engine from the FP32 graph

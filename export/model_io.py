"""A model file's tensors (ONNX, OpenVINO IR, TorchScript) and a Triton config checked against them, as NVIDIA's
backends check them at load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2 as mc

from triton_ner.core import names
from triton_ner.export import convert
from triton_ner.export.source import ExportError

_ONNX_TYPES = {"INT64": mc.TYPE_INT64, "FLOAT": mc.TYPE_FP32, "FLOAT16": mc.TYPE_FP16, "INT32": mc.TYPE_INT32}


_OPENVINO_TYPES = {"i64": mc.TYPE_INT64, "f32": mc.TYPE_FP32, "f16": mc.TYPE_FP16, "i32": mc.TYPE_INT32}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as the model file declares it: data type (a ``ModelConfig`` type) and shape, ``-1`` when dynamic."""

    data_type: int
    shape: tuple[int, ...]


def model_io(path: Path) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """Inputs and outputs of a model file, in order: the ONNX graph's, the OpenVINO IR's, or TorchScript's
    ``forward`` arguments with the shapes the traced module really takes and gives."""
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph

        def spec(value: onnx.ValueInfoProto) -> TensorSpec:
            tensor = value.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            return TensorSpec(_ONNX_TYPES.get(onnx.TensorProto.DataType.Name(tensor.elem_type), mc.TYPE_INVALID),
                              shape)

        return {i.name: spec(i) for i in graph.input}, {o.name: spec(o) for o in graph.output}
    if path.suffix == ".xml":
        import openvino as ov

        model = ov.Core().read_model(str(path))

        def port(value: Any) -> tuple[str, TensorSpec]:  # an openvino Output
            shape = tuple(d.get_length() if d.is_static else -1 for d in value.get_partial_shape())
            return value.get_any_name(), TensorSpec(_OPENVINO_TYPES.get(value.get_element_type().get_type_name(),
                                                                        mc.TYPE_INVALID), shape)

        return dict(map(port, model.inputs)), dict(map(port, model.outputs))
    labels = convert.torchscript_output_shape(path)[-1]
    tokens = TensorSpec(mc.TYPE_INT64, (-1, -1))
    return ({name: tokens for name in convert.torchscript_inputs(path)},
            {names.LOGITS: TensorSpec(mc.TYPE_FP32, (-1, -1, labels))})


def _resolve(name: str, available: list[str]) -> str:
    """The model's tensor that a config name means (the pytorch backend's ``<name>__<index>`` resolved)."""
    base, _, index = name.rpartition("__")
    if base and index.isdigit():  # NAMED_INDEX: the index is the position in forward()
        return available[int(index)] if int(index) < len(available) and available[int(index)] == base else ""
    return name if name in available else ""


def _shape_text(shape: list[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def check_config_against_model(config: mc.ModelConfig, model_file: Path) -> None:
    """The config's tensors exist in the model with its data types and dims, compared as NVIDIA's onnxruntime
    backend compares them when it loads the model (``CompareDimsSupported``).

    With ``max_batch_size`` > 0 the full shape is ``[-1] + dims`` and the model's first dimension must be
    dynamic; inputs match where the model's dimension is dynamic, outputs must match exactly. Ragged inputs
    (the Python-backend runner pads them itself) are checked by name and type only.
    """
    inputs, outputs = model_io(model_file)
    for tensors, declared, exact in ((config.input, inputs, False), (config.output, outputs, True)):
        for tensor in tensors:
            found = _resolve(tensor.name, list(declared))
            if not found:
                raise ExportError(f"{config.name}: tensor {tensor.name!r} is not in {model_file.name} "
                                  f"(it has {', '.join(declared)})")
            spec = declared[found]
            if tensor.data_type != spec.data_type:
                raise ExportError(f"{config.name}: tensor {tensor.name!r} is {mc.DataType.Name(tensor.data_type)} "
                                  f"in the config but {mc.DataType.Name(spec.data_type)} in {model_file.name}")
            if getattr(tensor, "allow_ragged_batch", False):
                continue
            full = ([-1] if config.max_batch_size > 0 else []) + list(tensor.dims)
            model = list(spec.shape)
            fits = len(model) == len(full) and all(m == c for m, c in zip(model, full, strict=True) if exact or m != -1)
            if config.max_batch_size > 0 and (not model or model[0] != -1):
                fits = False
            if not fits:
                raise ExportError(f"{config.name}: tensor {tensor.name!r} has shape {_shape_text(model)} in "
                                  f"{model_file.name} but the config declares {_shape_text(full)}"
                                  f"{' (batch dimension first)' if config.max_batch_size > 0 else ''}")

"""``python -m triton_ner.export``: a checkpoint to a Triton model repository, every artifact proven against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from triton_ner import cli
from triton_ner.core.names import DEFAULT_MODEL
from triton_ner.core.variants import Format, Precision, Target
from triton_ner.export.configs import ServingOptions
from triton_ner.export.convert import MIN_AGREEMENT
from triton_ner.export.source import BENCHMARK, FIXTURE, ExportError

app = cli.command()
FORMATS = {"onnx": {Format.ONNX}, "torchscript": {Format.TORCHSCRIPT}, "both": {Format.ONNX, Format.TORCHSCRIPT},
           "openvino": {Format.ONNX, Format.OPENVINO}, "all": {Format.ONNX, Format.TORCHSCRIPT, Format.OPENVINO}}


@app.command()
@cli.dataclass_options(ServingOptions, "options")
def main(
    model: Annotated[str, typer.Option(help=f"Hub id, local checkpoint folder, '{FIXTURE}' (the built-in test "
                                            f"model) or '{BENCHMARK}' (full-size DistilBERT, random weights).",
                                       envvar="MODEL")] = DEFAULT_MODEL,
    revision: Annotated[str | None, typer.Option(help="Hub revision (commit) to pin.")] = None,
    output: Annotated[Path, typer.Option(help="Model repository to write.")] = cli.REPOSITORY,
    format: Annotated[str, typer.Option("--format", help="onnx, torchscript, both (onnx and torchscript), "
                                                         "openvino (onnx and OpenVINO IR: configs/openvino*.pbtxt) "
                                                         "or all.")] = "onnx",
    precision: Annotated[list[Precision] | None, typer.Option(
        help="Extra precisions, repeatable: fp16 (GPU: model_fp16.onnx in configs/gpu.pbtxt, the TorchScript "
             "model in configs/cuda.pbtxt), bf16 (CPU: the TorchScript model in configs/bf16.pbtxt, OpenVINO in "
             "configs/openvino_bf16.pbtxt) and int8 (CPU: configs/int8.pbtxt, NNCF's OpenVINO INT8 in "
             "configs/openvino_int8.pbtxt). FP32 is always exported.")] = None,
    target: Annotated[Target, typer.Option(help="Write CPU configs, GPU configs (configs/gpu*.pbtxt) or both.")]
    = Target.BOTH,
    optimize: Annotated[bool, typer.Option(help="Fuse the ONNX graph with ONNX Runtime's transformer "
                                                "optimizer (kept only if proven equal).")] = True,
    min_agreement: Annotated[float, typer.Option(min=0.0, max=1.0, help="FP16/INT8: least share of entities "
                                                                        "identical to FP32.")] = MIN_AGREEMENT,
    keep_going: Annotated[bool, typer.Option(help="Leave out a lower precision whose file fails its proof (the "
                                                  "manifest's 'refused' says why) instead of failing the export.")]
    = False,
    force: Annotated[bool, typer.Option(help="Replace an existing export.")] = False,
    fallback_to_fixture: Annotated[bool, typer.Option(
        help="If the Hub cannot be reached, warn and export the fixture model.")] = False,
    options: ServingOptions = ServingOptions(),
) -> None:
    """Export a token-classification checkpoint into a Triton model repository (ONNX and/or TorchScript)."""
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.source import resolve

    if format not in FORMATS:
        raise cli.fail("export", f"--format {format!r} is not one of: {', '.join(FORMATS)}", cli.USAGE)
    plan = ExportPlan(frozenset(FORMATS[format]), frozenset(precision or [Precision.FP32]), target, options,
                      optimize, min_agreement, keep_going)
    with cli.one_line_errors("export", ExportError):
        plan.check()
        checkpoint = resolve(model, revision, fallback_to_fixture)
        build(checkpoint, output, plan, force=force, log=lambda message: cli.say("export", message))


if __name__ == "__main__":
    app()

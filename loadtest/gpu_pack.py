"""``make gpu-check-pack``: what serving the ensemble needs on a GPU machine that has no Triton, in one archive.

A machine with an NVIDIA GPU, PyTorch, transformers and tokenizers but neither Triton nor its client packages
(nor protobuf, with which the export writes configs) can still serve the ensemble for ``make gpu-check``:

- the runtime: ``tritonserver``, its libraries, the Python backend and the stub of every Python version that the
  nvidia-pytriton wheel ships, in the wheel's layout (``runtime/pytriton/tritonserver``,
  ``runtime/nvidia_pytriton.libs``; the wheel's own libpython, which serving does not use, is left out);
- the model repositories of the full-size benchmark model and of the fixture model, exported here in TorchScript
  (``config.pbtxt`` on CPU, ``configs/cuda.pbtxt``: the Python-backend runner in FP16 on the GPU) without their
  weights: the check traces the model on the GPU machine and puts the file in (:func:`unpack`), so nothing large
  travels.

The archive is about 40 MB. ``make gpu-check`` finds it in its default place and serves through it when the local
Triton is not installed; ``--pack FILE`` names another one.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from triton_ner import cli
from triton_ner.core import names

DEFAULT_PACK = Path("build/gpu-check/serving-pack.tar.gz")
MODELS = ("benchmark", "fixture")
WEIGHTS = f"{names.MODEL}/1/model.pt"  # the TorchScript file: traced where the check runs
RUNTIME_PARTS = ("bin", "backends", "python_backend_stubs", "caches")


def export_plan():
    """The served export: TorchScript in FP32 (``config.pbtxt``, CPU) and FP16 (``configs/cuda.pbtxt``, GPU)."""
    from triton_ner.export.configs import Format, Precision, Target
    from triton_ner.export.repository import ExportPlan
    from triton_ner.loadtest.gpu_check import MIN_AGREEMENT  # the benchmark model's random weights have near-ties

    return ExportPlan(frozenset({Format.TORCHSCRIPT}), frozenset({Precision.FP32, Precision.FP16}), Target.BOTH,
                      min_agreement=MIN_AGREEMENT["fp16"])


def _skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def pack(output: Path = DEFAULT_PACK, models: tuple[str, ...] = MODELS, log=print) -> Path:
    """Write the archive: the installed wheel's Triton runtime and each model's repository without weights."""
    from triton_ner.export.fixture import benchmark_model, fixture_model
    from triton_ner.export.repository import build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server import triton_dirs

    triton_dir, libs = triton_dirs()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="gpu-pack-") as folder, tarfile.open(partial, "w:gz") as archive:
        for part in RUNTIME_PARTS:
            archive.add(triton_dir / part, f"runtime/pytriton/tritonserver/{part}", filter=_skip)
        for library in sorted(libs.iterdir()):
            if not library.name.startswith("libpython"):
                archive.add(library, f"runtime/nvidia_pytriton.libs/{library.name}")
        for model in models:
            checkpoint = benchmark_model() if model == "benchmark" else fixture_model()
            repository = Path(folder) / model
            build(Checkpoint(checkpoint, model), repository, export_plan(), log=lambda m, model=model: log(
                f"{model}: {m}"))
            (repository / WEIGHTS).unlink()
            archive.add(repository, f"repositories/{model}", filter=_skip)
        description = json.dumps({"models": list(models), "weights": WEIGHTS}, indent=2).encode()
        info = tarfile.TarInfo("pack.json")
        info.size = len(description)
        archive.addfile(info, io.BytesIO(description))
    partial.replace(output)
    log(f"wrote {output} ({output.stat().st_size / 2**20:.0f} MB)")
    return output


@dataclass(frozen=True)
class Unpacked:
    runtime: Path  # for TritonServer(runtime=...)
    repository: Path  # the model's repository, its weights in place


def unpack(archive: Path, into: Path, model: str, torchscript: Path) -> Unpacked:
    """Unpack ``archive`` into ``into`` and put ``torchscript`` (the traced ``model``) into its repository."""
    with tarfile.open(archive) as packed:
        packed.extractall(into, filter="tar")
    described = json.loads((into / "pack.json").read_text())
    if model not in described["models"]:
        raise ValueError(f"{archive} holds the repositories of {', '.join(described['models'])}, not {model}: "
                         f"run `make gpu-check-pack` again")
    repository = into / "repositories" / model
    shutil.copyfile(torchscript, repository / described["weights"])
    return Unpacked(into / "runtime", repository)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_ner.loadtest.gpu_pack", description=(
        "Pack what make gpu-check needs to serve the ensemble on a GPU machine without Triton: the local Triton "
        "runtime and the TorchScript repositories of the benchmark and fixture models, without weights."))
    parser.add_argument("--output", type=Path, default=DEFAULT_PACK, help=f"The archive (default: {DEFAULT_PACK}).")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="A model whose repository goes in (repeatable; default: both).")
    args = parser.parse_args(argv)
    try:
        pack(args.output, tuple(args.model or MODELS), log=lambda m: cli.say("gpu-check-pack", m))
    except Exception as error:  # noqa: BLE001: one line, as every command of the project
        cli.error("gpu-check-pack", str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

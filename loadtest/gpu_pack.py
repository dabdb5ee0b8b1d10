"""``make gpu-check-pack``: what serving the ensemble needs on a GPU machine that has no Triton, in one archive.

A machine with an NVIDIA GPU, PyTorch, transformers and tokenizers but neither Triton nor its client packages
(nor protobuf, with which the export writes configs) can still serve the ensemble for ``make gpu-check``:

- the runtime: ``tritonserver``, its libraries, the Python backend and its stub for the GPU machine's Python
  (``--python``, by default this one's), in the nvidia-pytriton wheel's layout (``runtime/pytriton/tritonserver``,
  ``runtime/nvidia_pytriton.libs``; the wheel's own libpython, which serving does not use, is left out);
- the steps' numpy (below 2: this Triton's Python backend predates numpy 2), its wheel for that Python unpacked
  (``steps/``): the check makes the steps an environment of their own with it
  (:func:`triton_ner.server.environment.make`), the machine's other packages after it;
- the model repositories of the full-size benchmark model and of the fixture model, exported here in TorchScript
  (``config.pbtxt`` on CPU, ``configs/cuda.pbtxt``: the Python-backend runner in FP16 on the GPU) without their
  weights: the check traces the model on the GPU machine and puts the file in (:func:`unpack`), so nothing large
  travels.

The archive (xz) is about 40 MB and names the Python it is made for. ``make gpu-check`` finds it in its default
place and serves through it when the local Triton is not installed; ``--pack FILE`` names another one.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from triton_ner import cli
from triton_ner.core import names

if TYPE_CHECKING:
    from triton_ner.export.assemble import ExportPlan

DEFAULT_PACK = Path("build/gpu-check/serving-pack.tar.xz")
MODELS = ("benchmark", "fixture")
WEIGHTS = f"{names.MODEL}/1/model.pt"  # the TorchScript file: traced where the check runs
RUNTIME_PARTS = ("bin", "backends", "caches")
STUBS = "python_backend_stubs"
STEPS = "steps"  # the steps' packages (numpy below 2) in the archive
# The platforms of the numpy wheel (manylinux on x86-64, as the wheel's tritonserver).
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def export_plan() -> ExportPlan:
    """The served export: TorchScript in FP32 (``config.pbtxt``, CPU) and FP16 (``configs/cuda.pbtxt``, GPU)."""
    from triton_ner.core.variants import Format, Precision, Target
    from triton_ner.export.assemble import ExportPlan
    from triton_ner_loadtest.gpu_check import MIN_AGREEMENT  # the benchmark model's random weights have near-ties

    return ExportPlan(frozenset({Format.TORCHSCRIPT}), frozenset({Precision.FP32, Precision.FP16}), Target.BOTH,
                      min_agreement=MIN_AGREEMENT["fp16"])


def _skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def steps_wheels(python: str, into: Path) -> list[Path]:
    """The wheel of this environment's numpy (the steps' pin, below 2) for CPython ``python`` on x86-64 Linux,
    downloaded by pip into ``into`` (or taken from its cache)."""
    from importlib.metadata import version

    numpy = version("numpy")
    if int(numpy.split(".")[0]) >= 2:
        raise ValueError(f"this environment has numpy {numpy}, and the steps need numpy below 2: make the pack in "
                         "the project's environment (make setup, then make gpu-check-pack)")
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--implementation", "cp", "--python-version", python, *platforms, "--dest", str(into),
                           f"numpy=={numpy}"], capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("numpy-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ValueError(f"cannot download numpy {numpy} for Python {python}: "
                         f"{(done.stderr.strip().splitlines() or ['no wheel'])[-1]}")
    return wheels


def pack(output: Path = DEFAULT_PACK, models: tuple[str, ...] = MODELS, python: str | None = None,
         log: Callable[[str], None] = print) -> Path:
    """Write the archive: the installed wheel's Triton runtime with the stub of Python ``python`` (default: this
    one), the steps' numpy for it, and each model's repository without weights."""
    from triton_ner.export.assemble import build
    from triton_ner.export.fixture import benchmark_model, fixture_model
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.installation import triton_dirs

    python = python or this_python()
    triton_dir, libs = triton_dirs()
    stub = triton_dir / STUBS / python
    if not stub.is_dir():
        available = ", ".join(sorted(p.name for p in (triton_dir / STUBS).iterdir()))
        raise ValueError(f"this Triton has no Python-backend stub for Python {python} (it has {available})")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    # xz: a third smaller than gzip (the pack travels to machines with little room), in about 40 s.
    with tempfile.TemporaryDirectory(prefix="gpu-pack-") as folder, tarfile.open(partial, "w:xz",
                                                                                 preset=3) as archive:
        for part in RUNTIME_PARTS:
            archive.add(triton_dir / part, f"runtime/pytriton/tritonserver/{part}", filter=_skip)
        archive.add(stub, f"runtime/pytriton/tritonserver/{STUBS}/{python}", filter=_skip)
        wheels = steps_wheels(python, Path(folder) / "wheels")
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as unzipped:
                unzipped.extractall(Path(folder) / STEPS)
        archive.add(Path(folder) / STEPS, STEPS, filter=_skip)
        log(f"Python {python}: the stub and {', '.join(w.name for w in wheels)}")
        for library in sorted(libs.iterdir()):
            if not library.name.startswith("libpython"):
                archive.add(library, f"runtime/nvidia_pytriton.libs/{library.name}")
        for model in models:
            checkpoint = benchmark_model() if model == "benchmark" else fixture_model()
            repository = Path(folder) / model
            build(Checkpoint(checkpoint, model), repository, export_plan(),
                  log=lambda m, model=model: log(f"{model}: {m}"))  # type: ignore[misc]  # mypy#12557: lambda defaults
            (repository / WEIGHTS).unlink()
            archive.add(repository, f"repositories/{model}", filter=_skip)
        description = json.dumps({"models": list(models), "weights": WEIGHTS, "python": python, "steps": STEPS,
                                  "steps_wheels": [w.name for w in wheels]}, indent=2).encode()
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
    steps_packages: Path  # what the steps' environment needs before this machine's packages (numpy below 2)


def unpack(archive: Path, into: Path, model: str, torchscript: Path) -> Unpacked:
    """Unpack ``archive`` into ``into`` and put ``torchscript`` (the traced ``model``) into its repository."""
    with tarfile.open(archive) as packed:
        member = packed.extractfile("pack.json")
        assert member is not None  # pack() writes it as a regular file
        described = json.loads(member.read())
        python = described.get("python", "any")
        if python != this_python():
            raise ValueError(f"{archive} is made for Python {python}, and this is Python {this_python()}: make it "
                             f"again with `make gpu-check-pack GPU_PACK_ARGS='--python {this_python()}'`")
        if model not in described["models"]:
            raise ValueError(f"{archive} holds the repositories of {', '.join(described['models'])}, not {model}: "
                             f"run `make gpu-check-pack` again")
        packed.extractall(into, filter="tar")
    repository = into / "repositories" / model
    shutil.copyfile(torchscript, repository / described["weights"])
    return Unpacked(into / "runtime", repository, into / described["steps"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_ner_loadtest.gpu_pack", description=(
        "Pack what make gpu-check needs to serve the ensemble on a GPU machine without Triton: the local Triton "
        "runtime and the TorchScript repositories of the benchmark and fixture models, without weights."))
    parser.add_argument("--output", type=Path, default=DEFAULT_PACK, help=f"The archive (default: {DEFAULT_PACK}).")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="A model whose repository goes in (repeatable; default: both).")
    parser.add_argument("--python", default=this_python(),
                        help="The version of the GPU machine's python3 that runs make gpu-check, e.g. 3.12: the "
                             "stub and the steps' numpy wheel are for it (default: this Python, %(default)s).")
    args = parser.parse_args(argv)
    try:
        pack(args.output, tuple(args.model or MODELS), args.python, log=lambda m: cli.say("gpu-check-pack", m))
    except Exception as error:  # noqa: BLE001 - one line, as every command of the project
        cli.error("gpu-check-pack", str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

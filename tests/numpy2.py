"""Virtual environments whose Python has numpy 2 (``requirements/numpy2.txt``), every other version from
``requirements/constraints.txt``: what a machine as it comes may have, rehearsed by the tests."""

from __future__ import annotations

import re
import subprocess
import venv
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements"
# A bare GPU machine's Python: PyTorch, transformers and tokenizers, scipy and scikit-learn built for numpy 2, and
# nothing of Triton (no tritonclient, nvidia-pytriton, grpc, protobuf or onnx).
BARE_GPU_MACHINE = ("torch", "transformers", "tokenizers", "scipy", "scikit-learn")
ABSENT_ON_GPU_MACHINE = ("tritonclient", "pytriton", "grpc", "google.protobuf", "onnx", "onnxruntime", "locust",
                         "psutil", "matplotlib", "orjson")


def numpy2_pin() -> str:
    return next(line.strip() for line in (REQUIREMENTS / "numpy2.txt").read_text().splitlines()
                if line.startswith("numpy=="))


def make(folder: Path, *requirements: str) -> Path:
    """A virtual environment at ``folder`` with numpy 2, then ``requirements`` (names or pip arguments, such as
    ``wheel[client]``) installed beside it with constraints.txt's other versions, numpy left free as a user's
    environment leaves it; returns its ``bin/python``."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    python = folder / "bin" / "python"
    constraints = folder / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in (REQUIREMENTS / "constraints.txt").read_text().splitlines()
                                   if not re.match(r"numpy==", line)))
    _pip(python, numpy2_pin())
    if requirements:
        _pip(python, "-c", str(constraints), *requirements)
    return python


def _pip(python: Path, *arguments: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *arguments], capture_output=True,
                          text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(arguments)} failed: "
                           f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")


def version_of(python: Path, module: str) -> str | None:
    """``module.__version__`` in that Python, or None when it does not import."""
    done = subprocess.run([str(python), "-c", f"import {module}; print({module}.__version__)"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def bare_gpu_machine(folder: Path) -> Path:
    """The python of an environment as a GPU machine comes (:data:`BARE_GPU_MACHINE` beside numpy 2, none of
    :data:`ABSENT_ON_GPU_MACHINE`)."""
    python = make(folder, *BARE_GPU_MACHINE)
    code = ("import importlib.util as u\ndef has(name):\n    try:\n        return u.find_spec(name) is not None\n"
            "    except ModuleNotFoundError:\n        return False\n"
            f"print([n for n in {ABSENT_ON_GPU_MACHINE!r} if has(n)])")
    found = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    if found != "[]" or not (version_of(python, "numpy") or "").startswith("2."):
        raise RuntimeError(f"{folder} is not a bare GPU machine's environment: it has {found}, numpy "
                           f"{version_of(python, 'numpy')}")
    return python

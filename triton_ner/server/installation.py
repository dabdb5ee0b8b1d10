"""Where Triton comes from: the nvidia-pytriton wheel (or a folder laid out as it), NVIDIA's backends built by
``make backends``, the backend folder the launcher assembles and the environment the stubs need."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from triton_ner.core.errors import ServerError
from triton_ner.server.environment import StepsPython

# Triton's default backend folder in an installation (NVIDIA's image, the project's containers).
INSTALLED_BACKENDS = Path("/opt/tritonserver/backends")
# Where backends/build-*.sh put NVIDIA's backends (one folder per backend).
BUILT_BACKENDS = Path(__file__).resolve().parents[2] / "build" / "triton-backends"


def triton_dirs(runtime: Path | None = None) -> tuple[Path, Path]:
    """The folders of Triton (``tritonserver/``: binary, Python backend, stubs) and of its libraries: the
    nvidia-pytriton wheel's, or those of ``runtime``, a folder laid out as the wheel's (``make gpu-check-pack``)."""
    if runtime is not None:
        if not (runtime / "pytriton" / "tritonserver").is_dir():
            raise ServerError(f"{runtime} is not a Triton runtime folder (no pytriton/tritonserver in it)")
        return runtime / "pytriton" / "tritonserver", runtime / "nvidia_pytriton.libs"
    try:
        import pytriton
    except ImportError as error:
        raise ServerError("nvidia-pytriton is not installed: run `make setup`") from error
    package = Path(pytriton.__file__).parent
    return package / "tritonserver", package.parent / "nvidia_pytriton.libs"


NVIDIA_BACKENDS = ("onnxruntime", "pytorch", "openvino")


def built_backend(name: str) -> Path | None:
    """The folder of NVIDIA's backend ``name`` built by ``make backends``, or None when it is not built."""
    folder = BUILT_BACKENDS / name
    return folder if (folder / f"libtriton_{name}.so").exists() and (folder / ".stamp").exists() else None


def onnxruntime_backend() -> Path | None:
    """The folder of NVIDIA's ``onnxruntime`` backend built by ``make backends``, or None when it is not built."""
    folder = built_backend("onnxruntime")
    return folder if folder and (folder / "libonnxruntime.so.1").exists() else None


def nvidia_backend(name: str) -> Path | None:
    """The folder of NVIDIA's backend ``name`` (one of :data:`NVIDIA_BACKENDS`) when it is built, else None."""
    return onnxruntime_backend() if name == "onnxruntime" else built_backend(name)


def stub(runtime: Path | None = None, version: str | None = None) -> Path:
    """The Python backend's stub for Python ``version`` (default: this interpreter's), from the wheel or from
    ``runtime``."""
    triton_dir, _ = triton_dirs(runtime)
    version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
    path = triton_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not path.exists():
        raise ServerError(f"the Triton Python backend has no stub for Python {version}")
    return path


def backend_directory(root: Path, runtime: Path | None = None, python: StepsPython | None = None) -> Path:
    """A backend folder under ``root``: the Python backend with the stub for the steps' Python (``python``, by
    default this interpreter), from the wheel or from ``runtime``, and NVIDIA's ``onnxruntime``, ``pytorch`` and
    ``openvino`` backends when they are built."""
    triton_dir, _ = triton_dirs(runtime)
    shared = python.shared if python else bool(sysconfig.get_config_var("Py_ENABLE_SHARED"))
    if not shared:
        executable = python.executable if python else sys.executable
        raise ServerError(f"the Python backend's stub embeds libpython, and {executable} has none (it was "
                          "built without --enable-shared): use a Python with a shared libpython")
    python_folder = root / "python"
    python_folder.mkdir(parents=True, exist_ok=True)
    for source in (triton_dir / "backends" / "python" / "libtriton_python.so",
                   triton_dir / "backends" / "python" / "triton_python_backend_utils.py",
                   stub(runtime, python.version if python else None)):
        link = python_folder / source.name
        if not link.exists():
            link.symlink_to(source)
    for name in NVIDIA_BACKENDS:
        folder = nvidia_backend(name)
        if folder and not (root / name).exists():
            (root / name).symlink_to(folder, target_is_directory=True)
    return root


def server_environment(runtime: Path | None = None, python: StepsPython | None = None) -> dict[str, str]:
    """The environment the stubs need to run the steps' Python (``python``, by default this interpreter).

    The stub embeds libpython: that Python's own LIBDIR must come first, or the stub loads the system's older
    libpython and ``import ssl`` fails with ``undefined symbol``. The ``bin`` folder of its environment first on
    PATH makes the stub find that environment's site-packages: the stubs of Python 3.11 and later ignore
    ``PYTHONPATH`` (:mod:`triton_ner.server.environment`), so the steps' environment must import ``triton_ner``
    by itself.
    """
    _, libs = triton_dirs(runtime)
    executable = python.executable if python else Path(sys.executable)
    libdir = python.libdir if python else sysconfig.get_config_var("LIBDIR")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(executable.parent), env.get("PATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(libs), env.get("LD_LIBRARY_PATH")) if p)
    return env

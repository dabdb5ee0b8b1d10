"""The Python environment the Python-backend steps run in: which one, whether it can run them, and how to make one.

The Python backend's stub embeds libpython. The stubs of Python 3.11 and later start an isolated interpreter
(``PYTHONPATH`` and the other ``PYTHON*`` variables are ignored), which finds its packages through the ``python3``
first on ``PATH``: the launcher puts the steps' environment there (:func:`triton_ner.server.installation.
server_environment`). The stubs of Triton 2.51 are built with pybind11 2.10, from before numpy 2, and crash on the
first request when that environment has numpy 2 (python_backend's pybind11 2.12, from Triton 2.52 on, handles
both). So the launcher probes the environment (:func:`probe`) and refuses one the stub cannot run
(:func:`check`) before anything loads; a machine whose own Python has numpy 2 gets an environment of its own for
the steps (:func:`make`): numpy below 2 first, the machine's other packages after it.
"""

from __future__ import annotations

import json
import re
import site
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from triton_ner.core.errors import ServerError

# What the steps' code imports in every configuration; the model step's runtimes are its config's business.
_PROBE = """
import json, sys, sysconfig
found = {"version": "%d.%d" % sys.version_info[:2], "libdir": sysconfig.get_config_var("LIBDIR"),
         "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED"))}
for name in ("numpy", "triton_ner"):
    try:
        found[name] = getattr(__import__(name), "__version__", "")
    except Exception as error:
        found[name] = None
        found[name + "_error"] = "%s: %s" % (type(error).__name__, str(error).splitlines()[0] if str(error) else "")
print(json.dumps(found))
"""
# pybind11 2.12 and later import numpy's C API from ``numpy._core`` under numpy 2; 2.10 knows ``numpy.core`` only.
NUMPY2_MARK = b"numpy._core"


@dataclass(frozen=True)
class StepsPython:
    """The Python the stubs run and what the launcher must know of it."""

    executable: Path  # bin/python3 of its environment, not resolved: the stub finds that environment through it
    version: str  # "3.12"
    libdir: str | None
    shared: bool  # has a shared libpython, which the stub embeds
    numpy: str | None  # numpy's version there, None when it does not import
    imports_project: bool  # triton_ner imports there
    error: str = ""  # why numpy or triton_ner do not import

    @property
    def numpy_major(self) -> int | None:
        return int(self.numpy.split(".")[0]) if self.numpy else None


def probe(executable: Path | None = None) -> StepsPython:
    """What the stubs would find in the environment of ``executable`` (default: this interpreter's), asked of that
    Python in isolated mode (``-I``), as the stubs run it."""
    executable = Path(executable or sys.executable)
    try:
        done = subprocess.run([str(executable), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=120,
                              check=True)
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        raise ServerError(f"the Python for the Python-backend steps, {executable}, does not run ({error})") from None
    errors = "; ".join(found.get(f"{name}_error", "") for name in ("numpy", "triton_ner") if found.get(name) is None)
    return StepsPython(executable, found["version"], found["libdir"], found["shared"], found["numpy"],
                       found["triton_ner"] is not None, errors)


def check(python: StepsPython, stub: Path) -> None:
    """Refuse, in one line naming the cause and the fix, an environment in which ``stub`` cannot run the steps."""
    if python.numpy_major is not None and python.numpy_major >= 2 and NUMPY2_MARK not in stub.read_bytes():
        raise ServerError(f"the Python-backend steps would run numpy {python.numpy} ({python.executable}), and this "
                          "Triton's Python backend predates numpy 2 (its stub crashes on the first request): install "
                          "numpy<2 there (pip install 'numpy<2'), or serve with --steps-python naming an environment "
                          "that has it")
    if python.numpy is None or not python.imports_project:
        what = "numpy" if python.numpy is None else "triton_ner"
        raise ServerError(f"the Python-backend steps cannot import {what} with {python.executable} ({python.error}): "
                          "install the project's steps there (pip install '.[steps]')")


_NUMPY = re.compile(r"^numpy\b", re.IGNORECASE)


def _left_out(folder: Path) -> set[str]:
    """The top-level entries of ``folder`` (a site-packages) that stay out of a steps environment: numpy's, and
    where that numpy is 2 or later, those of every compiled distribution that requires numpy (built against
    numpy 2, such as scipy, scikit-learn or pandas, it may refuse numpy 1, and transformers imports scikit-learn
    when it is there)."""
    dists = list(metadata.distributions(path=[str(folder)]))
    numpy = next((d.version for d in dists if _NUMPY.match(d.metadata["Name"] or "")), "0")
    names: set[str] = set()
    for dist in dists:
        files = [str(f) for f in dist.files or []]
        if _NUMPY.match(dist.metadata["Name"] or ""):
            left_out = True
        elif int(numpy.split(".")[0]) >= 2:
            requires_numpy = any(_NUMPY.match(r) and "extra ==" not in r for r in dist.requires or [])
            left_out = requires_numpy and any(f.endswith(".so") or ".so." in f for f in files)
        else:
            left_out = False
        if left_out:
            names |= {f.split("/")[0] for f in files if not f.startswith("..")}
    return names


def make(target: Path, first: list[Path], extra_paths: Sequence[Path] = ()) -> Path:
    """A virtual environment for the steps at ``target``, from this interpreter. Its path: the folders ``first``
    (an unpacked wheel of numpy below 2); then ``extra_paths`` (where the project's packages are); then this
    interpreter's site-packages, seen through a folder of links that leaves out numpy and the compiled
    distributions built against it. Returns its ``bin/python3``, which the launcher puts first on the stubs'
    ``PATH``."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(target)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = target / "lib" / version / "site-packages"
    lines = [str(Path(p).resolve()) for p in (*first, *extra_paths)]
    for index, folder in enumerate(Path(p) for p in site.getsitepackages() if Path(p).is_dir()):
        if folder.resolve() == own.resolve():
            continue
        linked = target / "base" / str(index)
        linked.mkdir(parents=True)
        left_out = _left_out(folder)
        for entry in folder.iterdir():
            if entry.name not in left_out and entry.name != "__pycache__":
                (linked / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        # addsitedir: the machine's own .pth files (editable installs, namespace hooks) apply there too.
        lines.append(f"import site; site.addsitedir({str(linked)!r})")
    (own / "steps-environment.pth").write_text("\n".join(lines) + "\n")
    return target / "bin" / "python3"

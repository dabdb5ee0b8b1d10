"""Every product module imported, and each file loaded under one name only.

``python tests/imports.py`` imports every module of the packages the two distributions build (``pyproject.toml``
and ``loadtest/pyproject.toml``: ``triton_ner`` and its subpackages, ``triton_ner_loadtest``), from wherever the
Python running it finds them (an editable checkout, installed wheels), and prints one JSON report: the files loaded
under more than one module name, and the ``.py`` files of the packages' folders that no import reached. The tests run
it in each environment; :func:`loaded_twice` also checks the test session's own modules. ``modules`` gives each
module's file as it was found (through links, not resolved).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from collections import defaultdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Imported inside Triton's Python backend only; an empty stand-in lets triton_ner.python_backend import here.
BACKEND_ONLY = "triton_python_backend_utils"


def _file(module: types.ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    return os.path.realpath(file) if file else None


# The project's import names. Other packages' files are not this check's business (ONNX Runtime's transformer
# optimizer puts its own folder on sys.path and loads onnx_utils.py a second time, as onnx_utils).
OURS = ("triton_ner", "triton_ner_loadtest", "tests")


def loaded_twice(modules: dict[str, types.ModuleType] | None = None) -> dict[str, list[str]]:
    """``{file: [names]}`` for each Python source file of the project that two different module objects of
    ``modules`` (default: ``sys.modules``) were loaded from. (A compiled extension may define several modules in
    one file.)"""
    by_file: dict[str, dict[int, str]] = defaultdict(dict)
    for name, module in list((modules if modules is not None else sys.modules).items()):
        file = _file(module) if isinstance(module, types.ModuleType) else None
        if file and file.endswith(".py"):
            by_file[file].setdefault(id(module), name)
    return {file: sorted(names.values()) for file, names in by_file.items()
            if len(names) > 1 and any(n.split(".")[0] in OURS for n in names.values())}


def packages() -> list[str]:
    """The packages the project's two distributions build (their ``pyproject.toml``)."""
    import tomllib

    return [name for file in (PROJECT_ROOT / "pyproject.toml", PROJECT_ROOT / "loadtest" / "pyproject.toml")
            for name in tomllib.loads(file.read_text())["tool"]["setuptools"]["packages"]]


def import_everything() -> list[types.ModuleType]:
    """Each package of :func:`packages` and each module in it, but ``__main__`` modules (run, never imported)."""
    sys.modules.setdefault(BACKEND_ONLY, types.ModuleType(BACKEND_ONLY))
    found = []
    for name in packages():
        package = importlib.import_module(name)
        found.append(package)
        # Python files only: a package folder may hold a library built beside its source (server/libner_wakeup.so).
        found += [importlib.import_module(f"{name}.{file.stem}") for folder in package.__path__
                  for file in sorted(Path(folder).glob("*.py")) if file.stem not in ("__init__", "__main__")]
    return found


def _is_code_of_a_model(path: Path) -> bool:
    # model_repository/<model>/<version>/model.py: loaded by Triton's Python backend from the exported repository.
    return path.name == "model.py" and path.parent.name.isdecimal()


def main() -> None:
    modules = import_everything()
    folders = {Path(folder) for module in modules for folder in getattr(module, "__path__", ())}
    imported = {_file(m) for m in list(sys.modules.values()) if isinstance(m, types.ModuleType)}
    files = {os.path.realpath(p) for folder in folders for p in folder.rglob("*.py")
             if p.name != "__main__.py" and "__pycache__" not in p.parts and not _is_code_of_a_model(p)}
    # A model's folder is a package without a file (it holds only its code, 1/model.py, as data): None.
    print(json.dumps({"loaded_twice": loaded_twice(), "not_imported": sorted(files - imported),
                      "modules": {m.__name__: getattr(m, "__file__", None) for m in modules}}))


if __name__ == "__main__":
    main()

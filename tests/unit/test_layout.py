"""The package's shape: a pure core, one name per module, the models' code shipped with the package."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from triton_ner.export.assemble import PYTHON_MODELS, _copy_code
from triton_ner.export.source import ExportError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CORE = sorted(p.stem for p in (PROJECT_ROOT / "triton_ner" / "core").glob("*.py") if p.stem != "__init__")
# What the core must not pull in when imported: Triton and its client, the launcher, command-line libraries and
# the model libraries (imported inside the functions that need them, so the client installs without them).
FORBIDDEN = ("triton_python_backend_utils", "tritonclient", "pytriton", "triton_ner.server",
             "triton_ner.python_backend", "triton_ner.cli", "triton_ner.client", "triton_ner.export", "typer", "click",
             "rich", "torch", "transformers", "onnxruntime", "tokenizers")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_nothing_of_triton_the_server_or_the_command_lines(module):
    loaded = _modules_after_import(f"triton_ner.core.{module}")
    found = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not found, f"importing triton_ner.core.{module} loads {found}"


def _one_name_report(*command: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("where", ["the checkout's root", "another folder", "make checkout-tree's links"])
def test_every_module_of_the_checkout_loads_under_one_name(where, tmp_path):
    """From the root (on ``sys.path``, as under pytest and ``python -m``), where ``client/`` and ``export/`` could
    also import as ``client`` and ``export``; from elsewhere (the stubs, an installed command); and through the
    links that a Python without the project installed runs (``make gpu-check`` on a GPU machine as it comes)."""
    script = str(PROJECT_ROOT / "tests" / "imports.py")
    base = PROJECT_ROOT
    if where == "the checkout's root":
        report = _one_name_report(sys.executable, "-m", "tests.imports", cwd=PROJECT_ROOT)
    elif where == "another folder":
        report = _one_name_report(sys.executable, script, cwd=tmp_path)
    else:  # as make gpu-check runs it: the links first on the path, not the working directory
        base = tmp_path / "checkout"
        subprocess.run(["make", "--no-print-directory", "checkout-tree", f"CHECKOUT_TREE={base}"], cwd=PROJECT_ROOT,
                       capture_output=True, check=True, timeout=60)
        report = _one_name_report(sys.executable, script, cwd=PROJECT_ROOT,
                                  env={**os.environ, "PYTHONSAFEPATH": "1", "PYTHONPATH": str(base)})
    assert report["loaded_twice"] == {}
    assert report["not_imported"] == []
    folders = {name: Path(file).parent.relative_to(base).as_posix()
               for name, file in report["modules"].items() if file and Path(file).name == "__init__.py"}
    if base == PROJECT_ROOT:
        assert folders == {"triton_ner": "triton_ner", "triton_ner.core": "triton_ner/core",
                           "triton_ner.server": "triton_ner/server", "triton_ner.evaluate": "triton_ner/evaluate",
                           "triton_ner.client": "client", "triton_ner.export": "export",
                           "triton_ner.model_repository": "model_repository", "triton_ner_loadtest": "loadtest"}
    else:  # laid out as the wheels are
        assert folders == {name: name.replace(".", "/") for name in folders} and len(folders) == 8, folders


def test_the_one_name_check_finds_a_file_loaded_twice():
    code = ("import sys, json; sys.path[:0] = ['tests', '.']; import imports, triton_ner.client.inputs, "
            "client.inputs; print(json.dumps(imports.loaded_twice()))")
    found = json.loads(subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                      timeout=120, check=True).stdout)
    assert found == {str(PROJECT_ROOT / "client" / "inputs.py"): ["client.inputs", "triton_ner.client.inputs"],
                     str(PROJECT_ROOT / "client" / "__init__.py"): ["client", "triton_ner.client"]}


# Every ``python -m MODULE`` the project runs or documents.
_RUN_AS_MAIN = re.compile(r"""-m["',]* +["']?((?:triton_ner_loadtest|triton_ner)(?:\.\w+)*)\b""")
_WHERE_RUN = ("Makefile", "README.md", "docs", "docker", ".ci", "triton_ner", "client", "export", "loadtest", "tests")


def _modules_run_as_main() -> list[str]:
    files = [f for w in _WHERE_RUN for f in ([PROJECT_ROOT / w] if (PROJECT_ROOT / w).is_file()
                                              else sorted((PROJECT_ROOT / w).rglob("*")))]
    return sorted({m for f in files if f.is_file() and f.suffix in ("", ".md", ".py", ".sh", ".yml", ".gpu")
                   for m in _RUN_AS_MAIN.findall(f.read_text(errors="ignore"))})


def test_no_package_imports_a_module_that_python_m_runs():
    """``python -m a.b.c`` imports ``a.b`` first; had that imported ``a.b.c``, the file would run a second time,
    as ``__main__`` (runpy's RuntimeWarning)."""
    modules = _modules_run_as_main()
    assert {"triton_ner.server.wakeup", "triton_ner.server.watchdog", "triton_ner.export.configs",
            "triton_ner_loadtest.gpu_check"} <= set(modules), modules
    code = ("import importlib, json, sys\nfound = {}\nfor name in sys.argv[1:]:\n"
            "    parent = name.rpartition('.')[0]\n    if parent:\n        importlib.import_module(parent)\n"
            "    found[name] = name in sys.modules or name + '.__main__' in sys.modules\n"
            "print(json.dumps(found))")
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=300,
                          check=True)
    assert [m for m, imported in json.loads(done.stdout).items() if imported] == []


def test_the_client_library_loads_no_model_library():
    loaded = _modules_after_import("triton_ner.client")
    assert not {"torch", "transformers", "onnxruntime", "tokenizers", "pytriton"} & loaded


def test_the_layout_check_finds_a_forbidden_import():
    assert "tritonclient" in _modules_after_import("triton_ner.export.configs")


def test_a_missing_model_code_file_is_an_error_naming_it(tmp_path):
    code = tmp_path / "code"
    for model in PYTHON_MODELS[:-1]:
        (code / model / "1").mkdir(parents=True)
        (code / model / "1" / "model.py").write_text("# model\n")
    with pytest.raises(ExportError, match=rf"{PYTHON_MODELS[-1]}/1/model.py"):
        _copy_code(tmp_path / "repository", code)


def test_the_export_refuses_to_write_over_the_models_code(checkpoint):
    from triton_ner.export.assemble import build
    from triton_ner.export.source import Checkpoint

    with pytest.raises(ExportError, match="holds the models' code"):
        build(Checkpoint(checkpoint, "fixture"), PROJECT_ROOT / "model_repository", force=True, log=lambda _: None)


def test_what_the_export_writes_by_default_is_ignored_by_git():
    from triton_ner.cli import REPOSITORY

    done = subprocess.run(["git", "check-ignore", "-q", str(REPOSITORY / "manifest.json")], cwd=PROJECT_ROOT,
                          check=False)
    assert done.returncode == 0, f"{REPOSITORY} is not ignored by git"


def test_an_export_with_other_model_code_is_not_current(tmp_path):
    from triton_ner.export.assemble import code_is_current

    _copy_code(tmp_path)
    assert code_is_current(tmp_path)
    (tmp_path / "ner_text" / "1" / "model.py").write_text("# an older version\n")
    assert not code_is_current(tmp_path)

"""The package's shape: a pure core, one import name, the models' code shipped with the package."""

import json
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
             "triton_ner.python_backend", "triton_ner.cli", "triton_ner.client", "triton_ner.export", "typer", "click", "rich", "torch",
             "transformers", "onnxruntime", "tokenizers")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_nothing_of_triton_the_server_or_the_command_lines(module):
    loaded = _modules_after_import(f"triton_ner.core.{module}")
    found = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not found, f"importing triton_ner.core.{module} loads {found}"


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

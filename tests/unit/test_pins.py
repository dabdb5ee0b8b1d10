"""The pins for NVIDIA's Triton 24.10 image (Python 3.10): they resolve, agree with pyproject.toml, and the code the
image runs (the Python-backend steps, and ner-serve, its entrypoint) runs on Python 3.10 with them."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PINS = PROJECT_ROOT / "requirements" / "triton-24.10-py310.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)\s*(?:#\s*(.*))?$")
CONSTRAINTS = PROJECT_ROOT / "requirements" / "constraints.txt"
# What the Python steps import: the core, the Triton glue and the models' adapters.
BACKEND_CODE = sorted([*PROJECT_ROOT.glob("triton_ner/core/*.py"), PROJECT_ROOT / "triton_ner" / "python_backend.py",
                       PROJECT_ROOT / "triton_ner" / "__init__.py",
                       *PROJECT_ROOT.glob("model_repository/*/1/model.py")])
# ner-serve with --tritonserver, as docker/entrypoint-server.sh starts it in the image, and what it imports.
LAUNCHER_CODE = [*(PROJECT_ROOT / "triton_ner" / f"{name}.py" for name in ("serve", "cli", "health")),
                 *sorted((PROJECT_ROOT / "triton_ner" / "server").glob("*.py"))]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, tuple[str, str]]:
    """``{normalized name: (version, comment)}`` of the ``name==version`` lines."""
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[_normalize(match[1])] = (match[2], match[3] or "")
    return found


def _file_pins() -> dict[str, tuple[str, str]]:
    lines = PINS.read_text().splitlines()
    unparsed = [x for x in lines if x.strip() and not x.lstrip().startswith("#") and not PIN.match(x.strip())]
    assert not unparsed, f"lines of {PINS.name} that are not exact name==version pins: {unparsed}"
    return _pins(lines)


def _project_pins() -> dict[str, tuple[str, str]]:
    """The exact versions of requirements/constraints.txt, which `make setup` and CI install."""
    return _pins(CONSTRAINTS.read_text().splitlines())


@pytest.mark.slow
def test_the_pins_resolve_for_python_3_10_to_exactly_themselves(tmp_path):
    # Needs PyPI (CI has it): every pin exists as a wheel for CPython 3.10, the set is consistent, and it is
    # complete (pip installs nothing that is not pinned).
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--only-binary=:all:", "--python-version", "3.10", "--platform", "manylinux2014_x86_64",
                           "--implementation", "cp", "--report", str(report), "-r", str(PINS)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    resolved = {_normalize(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved == {name: version for name, (version, _) in _file_pins().items()}


def test_pins_shared_with_the_constraints_agree_or_say_why():
    project = _project_pins()
    pins = _file_pins()
    assert {"numpy", "tokenizers", "transformers"} <= pins.keys()
    assert not {"torch", "onnxruntime", "nvidia-pytriton", "tritonclient"} & pins.keys()
    for name, (version, comment) in pins.items():
        if name in project and project[name][0] != version:
            assert "constraints.txt" in comment and "Python" in comment, (
                f"{name}=={version} differs from constraints.txt's {project[name][0]} without a comment saying why")
    assert pins["transformers"][0] != project["transformers"][0]  # 5.21 and later need Python 3.11


def test_only_the_steps_pin_numpy_below_2():
    """Triton 2.51's Python backend predates numpy 2: the steps' extra, the tested set and the image's pins keep
    numpy below 2; the core (and so the client) installs beside numpy 2, which the tests rehearse."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    numpy_of = {role: next(r for r in requirements if re.match(r"numpy\b", r))
                for role, requirements in [("core", project["dependencies"]),
                                           *project["optional-dependencies"].items()]
                if any(re.match(r"numpy\b", r) for r in requirements)}
    assert numpy_of == {"core": "numpy>=1.24", "steps": "numpy>=1.24,<2"}
    assert _project_pins()["numpy"][0].startswith("1.") and _file_pins()["numpy"][0].startswith("1.")
    numpy2 = _pins((PROJECT_ROOT / "requirements" / "numpy2.txt").read_text().splitlines())
    assert list(numpy2) == ["numpy"] and numpy2["numpy"][0].startswith("2.")


@pytest.mark.parametrize("path", BACKEND_CODE + LAUNCHER_CODE, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_backend_code_parses_with_python_3_10_grammar(path):
    ast.parse(path.read_text(), str(path), feature_version=(3, 10))


def _vermin(*paths: Path) -> subprocess.CompletedProcess:
    # --eval-annotations: typer evaluates annotations at run time, so they count as code.
    return subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-t=3.10-",
                           "--violations", "--no-tips", "--eval-annotations", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_backend_code_uses_nothing_newer_than_python_3_10():
    done = _vermin(*BACKEND_CODE, *LAUNCHER_CODE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_version_check_finds_3_11_names(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import tomllib\nimport datetime\nimport enum\nfrom typing import Self\n\n\n"
                      "class Kind(enum.StrEnum):\n    A = 'a'\n\n\nWHEN = datetime.UTC\n"
                      "ERROR = ExceptionGroup('x', [ValueError()])\n")
    done = _vermin(sample)
    assert done.returncode != 0
    for name in ("tomllib", "datetime.UTC", "enum.StrEnum", "typing.Self", "ExceptionGroup"):
        assert name in done.stdout, done.stdout


def _module_level_imports(path: Path) -> set[str]:
    """The top-level packages ``path`` imports when it is imported (not those imported inside a function)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            found.add(node.module.split(".")[0])
    return found


def test_the_images_entrypoint_imports_only_what_the_pins_install():
    # ner-serve in NVIDIA's image: the standard library, the project and the pinned packages; no tritonclient or
    # protobuf (only the launcher's check of the wheel's backends needs them, which --tritonserver skips).
    imported = set().union(*map(_module_level_imports, LAUNCHER_CODE)) - set(sys.stdlib_module_names) - {"triton_ner"}
    assert imported and imported <= set(_file_pins()), imported

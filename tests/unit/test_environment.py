"""The steps' environment: the refusal of numpy 2 under a Python backend that predates it, what a steps
environment leaves out of a machine's packages, and one made from this interpreter."""

from pathlib import Path

import pytest

from triton_ner.core.errors import ServerError
from triton_ner.server import environment as env
from triton_ner.server import installation


def _python(numpy: str | None = "1.26.4", imports_project: bool = True) -> env.StepsPython:
    return env.StepsPython(Path("/envs/steps/bin/python3"), "3.12", "/usr/lib", True, numpy, imports_project,
                           "" if numpy else "ModuleNotFoundError: No module named 'numpy'")


def _stub(tmp_path: Path, knows_numpy2: bool) -> Path:
    stub = tmp_path / "triton_python_backend_stub"
    stub.write_bytes(b"\x7fELF..numpy.core.multiarray.." + (b"numpy._core" if knows_numpy2 else b""))
    return stub


def test_numpy2_is_refused_in_one_line_where_the_stub_predates_it(tmp_path):
    with pytest.raises(ServerError) as refused:
        env.check(_python("2.4.6"), _stub(tmp_path, knows_numpy2=False))
    message = str(refused.value)
    assert "\n" not in message
    assert "numpy 2.4.6" in message and "/envs/steps/bin/python3" in message
    assert "pip install 'numpy<2'" in message and "--steps-python" in message


def test_numpy2_runs_with_a_stub_that_knows_it_and_numpy1_with_any(tmp_path):
    env.check(_python("2.4.6"), _stub(tmp_path, knows_numpy2=True))
    env.check(_python("1.26.4"), _stub(tmp_path, knows_numpy2=False))


def test_an_environment_without_numpy_or_the_project_is_refused(tmp_path):
    with pytest.raises(ServerError, match="cannot import numpy .*No module named 'numpy'"):
        env.check(_python(None), _stub(tmp_path, knows_numpy2=True))
    with pytest.raises(ServerError, match=r"cannot import triton_ner .*pip install '\.\[steps\]'"):
        env.check(_python(imports_project=False), _stub(tmp_path, knows_numpy2=True))


def test_the_wheels_stubs_predate_numpy2():
    """Triton 2.51's Python backend (pybind11 2.10): what the refusal is for."""
    assert env.NUMPY2_MARK not in installation.stub().read_bytes()


def _distribution(site: Path, name: str, version: str, files: list[str], requires: list[str] = ()) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    for file in files:
        (site / file).parent.mkdir(parents=True, exist_ok=True)
        (site / file).write_text("")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/METADATA"]))


def _site(tmp_path: Path, numpy: str) -> Path:
    site = tmp_path / f"site-{numpy}"
    _distribution(site, "numpy", numpy, ["numpy/__init__.py", "numpy/_core/_multiarray_umath.so", "numpy.libs/x.so"])
    _distribution(site, "scipy", "1.17.1", ["scipy/__init__.py", "scipy/linalg/_fblas.so", "../../bin/x"],
                  ["numpy<2.7,>=1.26.4"])
    _distribution(site, "safetensors", "0.8.0", ["safetensors/__init__.py", "safetensors/_rust.abi3.so"],
                  ["numpy>=1.21.6; extra == \"numpy\""])
    _distribution(site, "transformers", "5.24.0", ["transformers/__init__.py"], ["numpy>=1.17"])
    _distribution(site, "tokenizers", "0.23.3", ["tokenizers/__init__.py", "tokenizers/tokenizers.abi3.so"])
    return site


def test_a_steps_environment_leaves_out_numpy_and_what_was_compiled_against_numpy2(tmp_path):
    site = _site(tmp_path, "2.4.6")
    assert env._left_out(site) == {"numpy", "numpy-2.4.6.dist-info", "numpy.libs", "scipy", "scipy-1.17.1.dist-info"}
    # Over numpy 1, compiled packages were built against the numpy the steps get: only numpy itself is replaced.
    assert env._left_out(_site(tmp_path, "1.26.4")) == {"numpy", "numpy-1.26.4.dist-info", "numpy.libs"}


def test_a_steps_environment_puts_its_numpy_first_and_this_pythons_packages_after(tmp_path):
    first = tmp_path / "steps"
    (first / "numpy").mkdir(parents=True)
    (first / "numpy" / "__init__.py").write_text("__version__ = '1.99.0'\n")
    python = env.make(tmp_path / "venv", [first])
    found = env.probe(python)
    assert found.numpy == "1.99.0" and found.imports_project, found  # triton_ner: this interpreter's packages
    assert found.executable == python and python.parent.name == "bin"

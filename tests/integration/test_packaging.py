"""The wheel as users install it: the client and eval extras alone in fresh environments, and an export from the
installed (not editable) package that a real Triton serves."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import numpy2
from tests.parity import assert_same
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer
from triton_ner.server.processes import stub_processes

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = PROJECT_ROOT / "requirements" / "constraints.txt"
SEED = "My name is Wolfgang and I live in Berlin"
# What the client must not bring: the model libraries and the Triton server wheel.
HEAVY = {"torch", "transformers", "tokenizers", "onnxruntime", "onnx", "nvidia-pytriton", "safetensors"}


def _run(*command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> tuple[Path, Path]:
    """The project's wheel and the load-test tooling's (loadtest/pyproject.toml)."""
    out = tmp_path_factory.mktemp("dist")
    # In a copy, so that the build's own egg-info and build/ never touch the checkout.
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", ".cache", "results", "*.egg-info", "__pycache__", ".pytest_cache", "sources"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", out, source,
         source / "loadtest", timeout=300)
    (project,) = out.glob("distilbert_ner_triton-*.whl")
    (loadtest,) = out.glob("distilbert_ner_triton_loadtest-*.whl")
    return project, loadtest


@pytest.fixture(scope="module")
def wheel(wheels) -> Path:
    return wheels[0]


def test_each_wheel_holds_one_import_name_and_the_project_the_models_code(wheels):
    import zipfile

    project, loadtest = (zipfile.ZipFile(w).namelist() for w in wheels)
    assert {n.split("/")[0] for n in project if not n.split("/")[0].endswith(".dist-info")} == {"triton_ner"}
    assert {n.split("/")[0] for n in loadtest if not n.split("/")[0].endswith(".dist-info")} == {"triton_ner_loadtest"}
    for model in ("ner_text", "ner_model"):
        assert f"triton_ner/model_repository/{model}/1/model.py" in project
    assert {"triton_ner/client/__init__.py", "triton_ner/export/__main__.py",
            "triton_ner/core/aggregation.py"} <= set(project)
    assert {"triton_ner_loadtest/__init__.py", "triton_ner_loadtest/locustfile.py",
            "triton_ner_loadtest/gpu_check.py"} <= set(loadtest)


def test_the_installed_wheels_load_every_module_under_one_name(wheels, tmp_path):
    """Both wheels installed side by side (their files alone on the path, ahead of the editable checkout), every
    module imported (tests/imports.py): each from the installed files, each file under one name."""
    target = tmp_path / "installed"
    _run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, *wheels, timeout=300)
    done = _run(sys.executable, PROJECT_ROOT / "tests" / "imports.py", env={**os.environ, "PYTHONPATH": str(target)},
                cwd=tmp_path, timeout=300)
    report = json.loads(done.stdout)
    assert report["loaded_twice"] == {} and report["not_imported"] == []
    assert [m for m, file in report["modules"].items() if file and not Path(file).is_relative_to(target)] == []
    assert {"triton_ner.client", "triton_ner.export", "triton_ner.model_repository", "triton_ner.evaluate",
            "triton_ner_loadtest.gpu_check"} <= set(report["modules"])


def test_the_client_extra_alone_installs_light_beside_numpy2_and_queries_the_server(wheel, tmp_path, triton,
                                                                                    pipelines):
    """Into an environment that has numpy 2 (only the steps' environment needs numpy below 2): numpy stays."""
    venv = tmp_path / "client-venv"
    python = numpy2.make(venv, f"{wheel}[client]")
    assert numpy2.version_of(python, "numpy") == numpy2.numpy2_pin().split("==")[1]
    installed = {line.split("==")[0].lower() for line in _run(python, "-m", "pip", "freeze").stdout.splitlines()}
    assert not HEAVY & installed, f"the client extra installed {sorted(HEAVY & installed)}"

    want = pipelines("simple")(SEED)
    command = _run(venv / "bin" / "ner-client", "--url", triton.grpc_url, SEED, timeout=120)
    assert_same(json.loads(command.stdout), want, "ner-client, gRPC")
    code = ("import json, sys; from triton_ner.client import NerClient\n"
            "with NerClient(sys.argv[1], 'http') as c: print(json.dumps(c.predict([sys.argv[2]])[0]))")
    library = _run(python, "-c", code, triton.http_url, SEED, cwd=tmp_path, timeout=120)
    assert_same(json.loads(library.stdout), want, "NerClient, HTTP")

    client_mb = _size_mb(venv / "lib")
    full_mb = _size_mb(Path(sys.prefix) / "lib")
    print(f"\ninstall size: client extra {client_mb:.0f} MB, make setup (all extras) {full_mb:.0f} MB "
          f"({client_mb / full_mb:.1%})")
    assert client_mb < full_mb / 5


@pytest.fixture(scope="module")
def steps_python(wheel, tmp_path_factory) -> Path:
    """The ``python3`` of an environment for the Python-backend steps as a user makes one: the wheel's ``steps``
    extra installed (not editable) with the project's pins, and no bytecode compiled at install (``--no-compile``),
    so that a ``.pyc`` of its ``triton_ner`` is written only by a process that imports that file."""
    venv = tmp_path_factory.mktemp("steps") / "venv"
    _run(sys.executable, "-m", "venv", venv, timeout=120)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile", "-c", CONSTRAINTS,
         f"{wheel}[steps]", timeout=900)
    return venv / "bin" / "python3"


def _source(package: Path, module: str) -> Path:
    """The source file of ``module`` in ``package`` (an installed top-level package)."""
    path = package.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _sources_imported_by(model_py: Path, package: Path) -> set[Path]:
    """The source files of ``package`` that a step's ``model.py`` imports itself (``from a.b import c``: ``a/b/c.py``
    when it is a module, else ``a/b.py``)."""
    found = set()
    for node in ast.walk(ast.parse(model_py.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package.name:
            found |= ({_source(package, f"{node.module}.{alias.name}") for alias in node.names
                       if _source(package, f"{node.module}.{alias.name}").exists()}
                      or {_source(package, node.module)})
        elif isinstance(node, ast.Import):
            found |= {_source(package, alias.name) for alias in node.names if alias.name.split(".")[0] == package.name}
    return found


def test_an_export_from_the_installed_wheel_is_served_by_triton(wheel, steps_python, tmp_path, checkpoint,
                                                               pipelines, monkeypatch):
    """The wheel exports a repository, and ``--steps-python`` serves it from an environment where the wheel is
    installed: the stubs import the installed ``triton_ner``, not the checkout this test runs in.

    Where the stubs imported a module from is read from what the import left: that environment's package was
    installed without bytecode, and a Python that imports a source file writes its ``.pyc`` beside it, so after
    serving, every module the steps' ``model.py`` import has its ``.pyc`` in the installed package (the launcher's
    probe imports the bare ``triton_ner`` only). Each stub's loaded files (``/proc/<pid>/maps``) show numpy's
    compiled modules from that environment too. A stub puts its working folder first on ``sys.path``, so the
    launcher runs the server in a folder of its own: in the checkout, as this test runs, the stubs would import
    the checkout's ``triton_ner`` whatever environment they run (``PYTHONPATH`` changes neither: the stubs of
    Python 3.11 and later ignore it)."""
    # The wheel's files alone on the path, ahead of the editable checkout; its dependencies from this venv.
    target = tmp_path / "installed"
    _run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = _run(sys.executable, "-c", "import triton_ner.export, triton_ner.model_repository as m; "
                 "print(triton_ner.export.__file__)", env=env, cwd=tmp_path).stdout
    assert where.startswith(str(target)), where
    repository = tmp_path / "repository"
    _run(sys.executable, "-m", "triton_ner.export", "--model", str(checkpoint), "--output", repository, env=env,
         cwd=tmp_path, timeout=600)
    for model in ("ner_text", "ner_model"):
        assert (repository / model / "1" / "model.py").read_bytes() == (
            target / "triton_ner" / "model_repository" / model / "1" / "model.py").read_bytes()

    installed = Path(_run(steps_python, "-I", "-c", "import triton_ner; print(triton_ner.__file__)",
                          cwd=tmp_path).stdout.strip()).parent
    venv = steps_python.parent.parent
    assert installed.is_relative_to(venv) and not (installed / "core" / "__pycache__").exists(), installed
    from triton_ner.client import NerClient

    # Bytecode written as Python writes it by default, by a stub that reads the environment too.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    with TritonServer(repository, free_ports(), steps_python=steps_python) as server:
        with NerClient(server.grpc_url) as client:
            (got,) = client.predict([SEED])
        stubs = stub_processes(server.started.pid)
        numpy_files = {pid: {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                             if "/site-packages/numpy/" in line} for pid in stubs}
    assert_same(got, pipelines("simple")(SEED), "served from the wheel's export")

    sources = set().union(*(_sources_imported_by(repository / model / "1" / "model.py", installed)
                            for model in ("ner_text", "ner_model")))
    assert len(sources) > 5 and all(source.is_file() for source in sources), sources
    not_imported = sorted(str(source.relative_to(installed.parent)) for source in sources
                          if not Path(importlib.util.cache_from_source(str(source))).exists())
    assert not_imported == [], f"the stubs did not import these files of {installed}: {not_imported}"
    assert set(stubs.values()) == {"ner_model", "ner_text"}, stubs
    for pid, files in numpy_files.items():
        assert files and all(Path(file).is_relative_to(venv) for file in files), (stubs[pid], files)


# The evaluation data of the eval extra's test: its sentences' words and their entities (sentence, type, first and
# last word).
EVAL_DATA = ("-DOCSTART- O\n\nWolfgang B-PER\nlives O\nin O\nBerlin B-LOC\n\n"
             "Angela B-PER\nMerkel I-PER\nvisited O\nSiemens B-ORG\n.  O\n")
EVAL_WORDS = (("Wolfgang", "lives", "in", "Berlin"), ("Angela", "Merkel", "visited", "Siemens", "."))
EVAL_ENTITIES = {(0, "PER", 0, 0), (0, "LOC", 3, 3), (1, "PER", 0, 1), (1, "ORG", 3, 3)}


def _pipeline_f1(pipe: Callable[[str], list[dict]]) -> float:
    """Entity-level F1 of the transformers pipeline on the evaluation data: each entity it finds in the words
    joined by spaces covers the words it overlaps, and counts when its type and words are those of the data."""
    found = set()
    for number, words in enumerate(EVAL_WORDS):
        starts = list(itertools.accumulate((len(word) + 1 for word in words[:-1]), initial=0))
        for entity in pipe(" ".join(words)):
            touched = [i for i, (start, word) in enumerate(zip(starts, words, strict=True))
                       if start < entity["end"] and entity["start"] < start + len(word)]
            found.add((number, entity["entity_group"], touched[0], touched[-1]))
    return 2 * len(found & EVAL_ENTITIES) / (len(found) + len(EVAL_ENTITIES))


def test_the_eval_extra_alone_scores_the_server_and_names_what_the_in_process_side_needs(wheel, tmp_path, triton,
                                                                                         pipelines):
    venv = tmp_path / "eval-venv"
    _run(sys.executable, "-m", "venv", venv, timeout=120)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", CONSTRAINTS, f"{wheel}[eval]", timeout=900)
    data = tmp_path / "small.conll"
    data.write_text(EVAL_DATA)
    # With `simple`, the fixture model finds an entity too many ("##ed" of "visited"): an F1 of 8/9, neither 0 nor 1.
    served = _run(venv / "bin" / "ner-eval", data, "--url", triton.grpc_url, "--no-in-process", "--json",
                  "--strategy", "simple", timeout=300)
    report = json.loads(served.stdout)
    assert report["sentences"] == 2 and report["in_process"] is None, report
    assert report["served"]["overall"]["f1"] == pytest.approx(_pipeline_f1(pipelines("simple"))), report
    assert report["served"]["source"], report

    both = subprocess.run([venv / "bin" / "ner-eval", data, "--url", triton.grpc_url, "--model", "fixture"],
                          capture_output=True, text=True, timeout=300, check=False)
    lines = both.stderr.strip().splitlines()
    assert both.returncode != 0 and len(lines) == 1, both.stderr
    assert "pip install 'distilbert-ner-triton[eval,export]'" in lines[0] and "--no-in-process" in lines[0]

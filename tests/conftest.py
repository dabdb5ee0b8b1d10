"""Shared fixtures: fixture checkpoints, their transformers pipelines, exported repositories, real Triton servers.

Two checkpoints: ``conll`` (dslim/distilbert-NER's labels) and ``plain`` (another label set, plain tags).
Everything is built once per session, on first use.
"""

from __future__ import annotations

import contextlib
import subprocess

import pytest

from triton_ner.export import corpus

LABEL_SETS = ("conll", "plain")


# The folder says what a test needs (pyproject.toml's markers): tests/unit nothing but Python and the fixture model,
# tests/integration a real Triton (or an export, a compiler), tests/deployment the deployment files' tools
# (podman-compose, hadolint, shellcheck, kubectl), tests/containers podman.
FOLDER_MARKERS = {"integration": "integration", "deployment": "deployment", "containers": "containers"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = item.path.parent.name
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


def pytest_sessionfinish(session, exitstatus):
    """The session fails if a test loaded a file under a second module name (``client.library`` beside
    ``triton_ner.client.library``): a patch or an ``isinstance`` on one copy misses the other."""
    from tests.imports import loaded_twice

    found = loaded_twice()
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.ensure_newline()
        for file, names in found.items():
            reporter.write_line(f"error: {file} was loaded under two module names: {', '.join(names)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def checkpoint_of():
    """``checkpoint_of(name)``: a fixture checkpoint ("conll", "plain") or "benchmark" (full size, random weights)."""
    from triton_ner.export.fixture import benchmark_model, fixture_model

    cache = {}

    def get(label_set: str = "conll"):
        if label_set not in cache:
            cache[label_set] = benchmark_model() if label_set == "benchmark" else fixture_model(label_set)
        return cache[label_set]

    return get


@pytest.fixture(scope="session")
def pipeline_of(checkpoint_of):
    """``pipeline_of(label_set, strategy)``: the real transformers pipeline on that checkpoint."""
    from transformers import pipeline

    cache = {}

    def get(label_set: str = "conll", strategy: str = "simple"):
        if (label_set, strategy) not in cache:
            cache[label_set, strategy] = pipeline("token-classification", model=str(checkpoint_of(label_set)),
                                                  aggregation_strategy=strategy)
        return cache[label_set, strategy]

    return get


@pytest.fixture(scope="session")
def repository_of(checkpoint_of, tmp_path_factory):
    """``repository_of(label_set)``: a model repository exported from that checkpoint."""
    from triton_ner.export.assemble import build
    from triton_ner.export.source import Checkpoint

    cache = {}

    def get(label_set: str = "conll"):
        if label_set not in cache:
            output = tmp_path_factory.mktemp(f"export-{label_set}") / "model_repository"
            build(Checkpoint(checkpoint_of(label_set), f"fixture {label_set}"), output, log=lambda _: None)
            cache[label_set] = output
        return cache[label_set]

    return get


@pytest.fixture(scope="session")
def server_of(repository_of):
    """``server_of(label_set)``: a real Triton server on that repository, on free ports, until the session ends."""
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    with contextlib.ExitStack() as stack:
        cache = {}

        def get(label_set: str = "conll"):
            if label_set not in cache:
                cache[label_set] = stack.enter_context(TritonServer(repository_of(label_set), free_ports()))
            return cache[label_set]

        yield get


@pytest.fixture(scope="session")
def checkpoint(checkpoint_of):
    return checkpoint_of("conll")


@pytest.fixture(scope="session")
def pipelines(pipeline_of):
    """``pipelines(strategy)`` on the conll checkpoint."""
    return lambda strategy="simple": pipeline_of("conll", strategy)


@pytest.fixture(scope="session")
def repository(repository_of):
    return repository_of("conll")


@pytest.fixture(scope="session")
def triton(server_of):
    return server_of("conll")


@pytest.fixture(autouse=True)
def _session_server_alive(request):
    """A test of the session's server fails with how that server ended, if it ended before the test."""
    if "triton" in request.fixturenames and request.getfixturevalue("triton").died:
        pytest.fail(request.getfixturevalue("triton").died)


@pytest.fixture(scope="session")
def parity_texts():
    """Generated CoNLL-style sentences plus the seed sentence."""
    return ["My name is Wolfgang and I live in Berlin"] + corpus.texts(60, seed=7)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A CA, a server certificate for localhost signed by it, and a client certificate for mutual TLS."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=test CA")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, extra in (("server", ("-extfile", "san.ext")), ("client", ())):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                f"/CN={'localhost' if name == 'server' else 'client'}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "1", *extra)
    return folder


@pytest.fixture(scope="session")
def bare_gpu_python(tmp_path_factory):
    """The python of an environment as a GPU machine comes: numpy 2, scipy and scikit-learn built for it, PyTorch,
    transformers, tokenizers; no Triton package (``tests/numpy2.py``)."""
    from tests import numpy2

    return numpy2.bare_gpu_machine(tmp_path_factory.mktemp("bare-gpu-machine") / "venv")

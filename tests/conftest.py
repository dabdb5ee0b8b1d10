"""Shared fixtures: the fixture checkpoint, its transformers pipeline, an exported repository, a real Triton."""

from __future__ import annotations

import shutil

import pytest

from export import corpus


def pytest_collection_modifyitems(config, items):
    if shutil.which("nvidia-smi") is None:
        skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def checkpoint():
    """The fixture checkpoint folder (trained once and cached)."""
    from export.fixture import fixture_model

    return fixture_model()


@pytest.fixture(scope="session")
def pipelines(checkpoint):
    """``pipelines(strategy)``: the real transformers pipeline on the fixture checkpoint."""
    from transformers import pipeline

    cache = {}

    def get(strategy: str = "simple"):
        if strategy not in cache:
            cache[strategy] = pipeline("token-classification", model=str(checkpoint),
                                       aggregation_strategy=strategy)
        return cache[strategy]

    return get


@pytest.fixture(scope="session")
def parity_texts():
    """Generated CoNLL-style sentences plus the seed sentence."""
    return ["My name is Wolfgang and I live in Berlin"] + corpus.texts(60, seed=7)


@pytest.fixture(scope="session")
def repository(checkpoint, tmp_path_factory):
    """A model repository exported from the fixture checkpoint."""
    from export.repository import build
    from export.source import Checkpoint

    output = tmp_path_factory.mktemp("export") / "model_repository"
    build(Checkpoint(checkpoint, "fixture"), output, log=lambda _: None)
    return output


@pytest.fixture(scope="session")
def triton(repository):
    """A real Triton server on the exported repository, on free ports, for the whole session."""
    from ner.server import TritonServer, free_ports

    with TritonServer(repository, free_ports()) as server:
        yield server

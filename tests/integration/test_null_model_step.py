"""The null model step, with which the ceiling and gpu-check measure the serving path alone: Triton serves the
ensemble with it, the model step runs no model, and every token gets the first label (no entities)."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from triton_ner.client import NerClient
from triton_ner.core import names
from triton_ner.server.arguments import free_ports
from triton_ner.server.launcher import TritonServer
from triton_ner_loadtest.ceiling import with_null_model_step

SENTENCES = ["Angela Merkel met Emmanuel Macron in Paris on Monday.", "Airbus and the European Union in Berlin."]


@pytest.fixture(scope="module")
def null_served(repository, tmp_path_factory):
    copy = tmp_path_factory.mktemp("null-model-step") / "model_repository"
    shutil.copytree(repository, copy, symlinks=True)
    with TritonServer(copy, free_ports(), config_name=with_null_model_step(copy)) as server:
        yield server


def test_the_null_model_step_answers_no_entities_where_the_model_finds_some(null_served, pipelines):
    found = [pipelines("simple")(text) for text in SENTENCES]
    assert any(found), "the fixture model finds no entity here: the comparison would prove nothing"
    with NerClient(null_served.grpc_url) as client:
        assert client.predict(SENTENCES) == [[], []]
        # Every token, with nothing left out: zero logits, so the first label at a uniform score.
        tokens = client.predict(SENTENCES, aggregation_strategy="none", ignore_labels=[])
    assert all(tokens) and {(t["entity"], round(t["score"], 6)) for text in tokens for t in text} == {
        ("O", round(1 / len(names.CONLL_LABELS), 6))}


def test_the_served_model_step_is_the_null_runner(null_served):
    with urllib.request.urlopen(f"http://{null_served.http_url}/v2/models/{names.MODEL}/config") as answer:
        config = json.load(answer)
    assert config["backend"] == "python"
    assert config["parameters"]["model_file"]["string_value"] == names.NULL_MODEL_FILE

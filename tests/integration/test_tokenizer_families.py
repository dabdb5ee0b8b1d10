"""Model families other than DistilBERT, each with its own kind of tokenizer: exported, served by Triton, and held
against the transformers pipeline on the same checkpoint for every strategy.

The fixtures (``triton_ner.export.fixture.family_model``) are tiny models trained here: BERT uncased (WordPiece,
lower-cased and accents stripped, so ``word`` differs from the text), RoBERTa (byte-level BPE: emoji and accents
split into bytes whose offsets overlap), XLM-RoBERTa and DeBERTa-v2 (Unigram with SentencePiece's ``▁``). The
last three have no sub-word marks, so ``first``, ``average`` and ``max`` take the pipeline's fallback word rule.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.parity import HARD_CASES, STRATEGIES, assert_same, expected
from triton_ner.client import NerClient
from triton_ner.core.tokenization import DEFAULT_STRIDE, count_windows
from triton_ner.export import corpus
from triton_ner.export.fixture import FAMILIES, family_model

# The pipeline warns on every call with first, average or max for a tokenizer without sub-word marks (BPE,
# Unigram) that it falls back to its heuristic; that fallback is what the server must match here.
pytestmark = pytest.mark.filterwarnings("ignore:Tokenizer does not support real words:UserWarning")

# Each family's architecture and tokenizer model, as its checkpoint saves them.
KINDS = {
    "bert-uncased": ("BertForTokenClassification", "WordPiece"),
    "roberta": ("RobertaForTokenClassification", "BPE"),
    "xlm-roberta": ("XLMRobertaForTokenClassification", "Unigram"),
    "deberta-v2": ("DebertaV2ForTokenClassification", "Unigram"),
}
EXTRA_CASES = {
    "digits": "Siemens paid 3,500,000 euros on 12.03.2024 to 2 firms in Berlin-Mitte (No. 7), up 4.5%.",
    "capital_accents": "ÉLODIE Ørsted and Ångström met in SÃO PAULO; Łódź beat Göteborg 3-1.",
    "punctuation_glued": "\"Wolfgang\",'Berlin';[Siemens]{Paris}<NASA>...Merkel?!",
    "double_spaces": "  Angela   Merkel  met  Wolfgang   in  Berlin  ",
}
GENERATED = 30
TORCHSCRIPT_REFUSED = {"deberta-v2"}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def family_checkpoint(family):
    return family_model(family)


@pytest.fixture(scope="module")
def served(family_checkpoint, family, tmp_path_factory):
    """A Triton server on the family's exported repository, for this family's tests only."""
    from triton_ner.export.assemble import build
    from triton_ner.export.source import Checkpoint
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    output = tmp_path_factory.mktemp(f"export-{family}") / "model_repository"
    build(Checkpoint(family_checkpoint, f"fixture {family}"), output, log=lambda _: None)
    with TritonServer(output, free_ports()) as server:
        yield server


@pytest.fixture(scope="module")
def cases(family_checkpoint):
    """Generated sentences, the hard cases, and texts of one window, just over one, and of many."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(family_checkpoint)
    generated = corpus.texts(GENERATED, seed=7)
    named = {f"generated_{i}": t for i, t in enumerate(generated)} | HARD_CASES | EXTRA_CASES
    named |= {"many_windows": " ".join(corpus.texts(200, seed=11)),
              "two_windows": " ".join(corpus.texts(60, seed=12))}
    windows = count_windows(tokenizer, list(named.values()), DEFAULT_STRIDE)
    assert windows[-2] >= 5 and windows[-1] >= 2, windows[-2:]
    return [(name, text, count) for (name, text), count in zip(named.items(), windows, strict=True)]


def test_the_fixture_is_of_its_family(family, family_checkpoint):
    architecture, tokenizer_model = KINDS[family]
    assert json.loads((family_checkpoint / "config.json").read_text())["architectures"] == [architecture]
    tokenizer = json.loads((family_checkpoint / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == tokenizer_model
    if family == "bert-uncased":
        assert tokenizer["normalizer"]["lowercase"] is True


def test_the_fixture_tokenizer_does_not_depend_on_the_number_of_threads(family, family_checkpoint):
    """The trainers of ``tokenizers`` run on all cores; the fixture's vocabulary must not vary with them."""
    threads = "1" if (os.cpu_count() or 1) > 1 else "3"
    made = subprocess.run(
        [sys.executable, "-c", "import sys; from triton_ner.export.fixture import family_tokenizer; "
         "print(family_tokenizer(sys.argv[1]).backend_tokenizer.to_str())", family],
        env=os.environ | {"RAYON_NUM_THREADS": threads}, capture_output=True, text=True, check=True, timeout=120)
    saved = json.loads((family_checkpoint / "tokenizer.json").read_text())
    assert json.loads(made.stdout)["model"] == saved["model"]


def test_the_torchscript_export_is_proven_or_refused(family, family_checkpoint, tmp_path):
    """TorchScript files are traced, so whatever a model makes on the tracing device stays there. BERT, RoBERTa
    and XLM-RoBERTa trace to a file that runs anywhere; DeBERTa-v2 builds its relative positions on the tracing
    device and masks with float32's lowest value, and the export refuses that file in one line."""
    from triton_ner.core.variants import Format
    from triton_ner.export.assemble import ExportPlan, build
    from triton_ner.export.source import Checkpoint, UnsafeGraph

    def export() -> dict:
        return build(Checkpoint(family_checkpoint, family), tmp_path / "repository",
                     ExportPlan(formats=frozenset({Format.TORCHSCRIPT})), log=lambda _: None)

    if family in TORCHSCRIPT_REFUSED:
        with pytest.raises(UnsafeGraph, match="device constants"):
            export()
        assert not (tmp_path / "repository").exists()
    else:
        proof = export()["proofs"]["model.pt"]
        assert proof["max_abs_logit_diff"] <= proof["tolerance"]
        assert proof["device_constants"] == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_served_entities_equal_the_pipeline(strategy, family, family_checkpoint, served, cases):
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(family_checkpoint), aggregation_strategy=strategy)
    # `none` cannot combine windows (the pipeline refuses stride with it; the server refuses long texts).
    checked = [case for case in cases if strategy != "none" or case[2] == 1]
    with NerClient(served.grpc_url) as client:
        got = []
        for start in range(0, len(checked), 7):  # several texts of different lengths per request
            got += client.predict([text for _, text, _ in checked[start:start + 7]], aggregation_strategy=strategy)
    want = [expected(pipe, text, strategy, windows) for _, text, windows in checked]
    # The fixture finds entities: the comparison is not of empty lists.
    assert sum(map(len, want)) >= len(checked), (family, strategy)
    for (name, _, _), found, entities in zip(checked, got, want, strict=True):
        assert_same(found, entities, f"{family} {strategy} {name}")

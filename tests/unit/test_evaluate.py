"""``ner-eval``'s pure parts: reading CoNLL files, spans to tags, scoring against figures counted by hand, and the
command's one-line errors (no server needed)."""

import json
import sys

import pytest
from typer.testing import CliRunner

from triton_ner.evaluate.conll import (
    DataError,
    Scheme,
    check_scheme,
    detect_scheme,
    parse_conll,
    read_conll,
    tags_from_entities,
    to_iob1,
    token_spans,
)
from triton_ner.evaluate.scores import Figures, Scores, Side, app, failures, predicted_tags, report, score, table
from triton_ner.server.arguments import free_ports

IOB2_FILE = """\
John B-PER
Smith I-PER
lives O
in O
New B-LOC
York I-LOC
. O

Siemens B-ORG
and O
Google B-ORG
opened O
in O
Berlin B-LOC
. O

The O
German B-MISC
team O
won O
. O
"""

# The same sentences as the original CoNLL-2003 files have them: four columns, IOB1, -DOCSTART- lines.
IOB1_FILE = """\
-DOCSTART- -X- -X- O

John NNP B-NP I-PER
Smith NNP I-NP I-PER
lives VBZ B-VP O
in IN B-PP O
New NNP B-NP I-LOC
York NNP I-NP I-LOC
. . O O

Siemens NNP B-NP I-ORG
and CC O O
Google NNP B-NP I-ORG
opened VBD B-VP O
in IN B-PP O
Berlin NNP B-NP I-LOC
. . O O

-DOCSTART- -X- -X- O

The DT B-NP O
German JJ I-NP I-MISC
team NN I-NP O
won VBD B-VP O
. . O O
"""

# What a model might return for the texts "John Smith lives in New York .", "Siemens and Google opened in
# Berlin .", "The German team won .": one person right, "New" alone as a place (York missed), Google as a place,
# Berlin right, no MISC at all.
ENTITIES = [
    [{"entity_group": "PER", "start": 0, "end": 10}, {"entity_group": "LOC", "start": 20, "end": 23}],
    [{"entity_group": "ORG", "start": 0, "end": 7}, {"entity_group": "LOC", "start": 12, "end": 18},
     {"entity_group": "LOC", "start": 29, "end": 35}],
    [],
]


def _by_hand() -> tuple[dict[str, tuple[float, float, float, int]], tuple[float, float, float, int], float]:
    """Figures counted from the sentences above: (true positives, predicted, gold) per type."""
    counts = {"LOC": (1, 3, 2),    # Berlin; predicted New, Google, Berlin; gold New York, Berlin
              "MISC": (0, 0, 1),   # German missed
              "ORG": (1, 1, 2),    # Siemens; Google missed
              "PER": (1, 1, 1)}    # John Smith

    def figures(tp, predicted, gold):
        precision = tp / predicted if predicted else 0.0
        recall = tp / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1, gold

    overall = figures(*(sum(c[i] for c in counts.values()) for i in range(3)))
    # 19 tokens; wrong: York (O for LOC), Google (LOC for ORG), German (O for MISC).
    return {name: figures(*c) for name, c in counts.items()}, overall, 16 / 19


@pytest.mark.parametrize(("text", "scheme"), [(IOB2_FILE, Scheme.IOB2), (IOB1_FILE, Scheme.IOB1)])
def test_scores_equal_the_figures_counted_by_hand(text, scheme):
    sentences = parse_conll(text.splitlines(keepends=True), "small.conll")
    assert detect_scheme(sentences) is scheme
    got = score([s.tags for s in sentences], predicted_tags(sentences, ENTITIES, scheme))
    types, overall, accuracy = _by_hand()
    assert got.overall == Figures(*overall)
    assert got.overall.precision == 3 / 5 and got.overall.recall == 3 / 6
    assert got.types == {name: Figures(*figures) for name, figures in types.items()}
    assert got.types["LOC"].f1 == 0.4
    assert got.accuracy == accuracy


def test_iob1_predictions_are_written_in_iob1():
    sentences = parse_conll(IOB1_FILE.splitlines(), "small.conll")
    assert predicted_tags(sentences, ENTITIES, Scheme.IOB1)[0] == ["I-PER", "I-PER", "O", "O", "I-LOC", "O", "O"]
    assert predicted_tags(sentences, ENTITIES, Scheme.IOB2)[0] == ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]


def test_seqeval_strict_mode_in_the_data_scheme_gives_the_same_figures():
    """The module docstring's claim: valid tags in one scheme chunk the same in default and strict mode."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB1, IOB2

    for text, scheme, strict in ((IOB2_FILE, Scheme.IOB2, IOB2), (IOB1_FILE, Scheme.IOB1, IOB1)):
        sentences = parse_conll(text.splitlines(), "small.conll")
        gold = [list(s.tags) for s in sentences]
        predicted = predicted_tags(sentences, ENTITIES, scheme)
        default = classification_report(gold, predicted, output_dict=True, zero_division=0)
        assert classification_report(gold, predicted, output_dict=True, zero_division=0, mode="strict",
                                     scheme=strict) == default


def test_reading_keeps_tokens_tags_and_line_numbers():
    sentences = parse_conll(IOB1_FILE.splitlines(), "small.conll")
    assert [len(s.tokens) for s in sentences] == [7, 7, 5]
    assert sentences[0].tokens[:2] == ("John", "Smith") and sentences[0].tags[:2] == ("I-PER", "I-PER")
    assert sentences[0].lines[0] == 3 and sentences[2].lines == (21, 22, 23, 24, 25)
    tabs = parse_conll(["Berlin\tB-LOC\n", "is\tO\r\n", "\n", "\n", "Paris\tB-LOC\n"], "tabs.conll")
    assert [s.tokens for s in tabs] == [("Berlin", "is"), ("Paris",)]
    assert [s.text for s in tabs] == ["Berlin is", "Paris"]


def test_iob1_and_iob2_are_detected_and_checked():
    iob2 = parse_conll(IOB2_FILE.splitlines(), "a")
    iob1 = parse_conll(IOB1_FILE.splitlines(), "b")
    assert detect_scheme(iob2) is Scheme.IOB2 and detect_scheme(iob1) is Scheme.IOB1
    # IOB1's B- between two entities of one type; I- after another type opens an entity in IOB1 only.
    assert detect_scheme(parse_conll(["Paris I-LOC", "London B-LOC"])) is Scheme.IOB1
    assert detect_scheme(parse_conll(["Paris B-LOC", "Smith I-PER"])) is Scheme.IOB1
    assert detect_scheme(parse_conll(["it O"])) is Scheme.IOB2
    check_scheme(iob2, Scheme.IOB2, "a")
    check_scheme(iob1, Scheme.IOB1, "b")
    with pytest.raises(DataError, match=r"^b:3: I-PER opens an entity, which IOB2 does not allow"):
        check_scheme(iob1, Scheme.IOB2, "b")
    with pytest.raises(DataError, match=r"^a:1: B-PER after O, which IOB1 does not allow"):
        check_scheme(iob2, Scheme.IOB1, "a")


@pytest.mark.parametrize(("text", "message"), [
    ("Berlin NNP B-LOC\nis VBZ O\nnice JJ\n", r"^bad.conll:3: 2 columns where the first line has 3$"),
    ("Berlin B-LOC\n\nParis X-LOC\n", r"^bad.conll:3: unknown tag 'X-LOC' \(expected O, B-TYPE or I-TYPE\)$"),
    ("Berlin B-LOC\nis o\n", r"^bad.conll:2: unknown tag 'o'"),
    ("Berlin B-\n", r"^bad.conll:1: unknown tag 'B-'"),
    ("", r"^bad.conll:1: no sentences \(the file is empty\)$"),
    ("\n-DOCSTART- O\n\n", r"^bad.conll:3: no sentences \(only blank lines and -DOCSTART-\)$"),
    ("Berlin B-LOC\nis O\nParis\n", r"^bad.conll:3: token 'Paris' has no tag \(expected the token first and its tag "
                                    r"in the last column\)$"),
])
def test_a_malformed_file_is_one_error_naming_the_line(tmp_path, text, message):
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(DataError, match=message.replace("bad.conll", str(path).replace("\\", "\\\\"))):
        read_conll(path)
    with pytest.raises(DataError, match=message):
        parse_conll(text.splitlines(), "bad.conll")


def test_unreadable_files_are_one_error(tmp_path):
    with pytest.raises(DataError, match=r"missing.conll: No such file or directory$"):
        read_conll(tmp_path / "missing.conll")
    latin = tmp_path / "latin.conll"
    latin.write_bytes("Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.conll: not UTF-8 text$"):
        read_conll(latin)


def test_token_spans_index_the_joined_text():
    tokens = ("Zürich", ",", "🙂", "New", "York")
    text = " ".join(tokens)
    assert [text[start:end] for start, end in token_spans(tokens)] == list(tokens)


def _tags(tokens, entities, scheme=Scheme.IOB2):
    found = [{"entity_group": kind, "start": start, "end": end} for kind, start, end in entities]
    return tags_from_entities(token_spans(tokens), found, scheme)


def test_an_entity_covering_part_of_a_token_tags_the_token():
    assert _tags(["Berlin-based", "firms"], [("LOC", 0, 6)]) == ["B-LOC", "O"]
    assert _tags(["New", "York", "fell"], [("LOC", 0, 6)]) == ["B-LOC", "I-LOC", "O"]  # "New Yo"
    assert _tags(["in", "Berlin"], [("LOC", 5, 6)]) == ["O", "B-LOC"]  # the entity ends inside "Berlin"


def test_a_word_split_into_several_entities_stays_one_entity():
    # With "simple", a word the tokenizer split can come back as two entities of the same token.
    assert _tags(["Krzyzanowski", "spoke"], [("PER", 0, 3), ("PER", 3, 12)]) == ["B-PER", "O"]
    # Two entities over one token: the first one wins.
    assert _tags(["Siemens/Google", "grew"], [("ORG", 0, 7), ("LOC", 8, 14)]) == ["B-ORG", "O"]


def test_punctuation_and_several_entities():
    tokens = ["Berlin", ",", "Paris", "London", "and", "U.S.", "Steel", "."]
    # "Berlin , Paris London and U.S. Steel ."
    entities = [("LOC", 0, 6), ("LOC", 9, 14), ("LOC", 15, 21), ("ORG", 26, 36)]
    assert _tags(tokens, entities) == ["B-LOC", "O", "B-LOC", "B-LOC", "O", "B-ORG", "I-ORG", "O"]
    assert _tags(tokens, entities, Scheme.IOB1) == ["I-LOC", "O", "I-LOC", "B-LOC", "O", "I-ORG", "I-ORG", "O"]
    assert _tags(tokens, []) == ["O"] * len(tokens)
    assert _tags(tokens, [("LOC", 3, 3)]) == ["O"] * len(tokens)  # empty spans are nothing


def test_entities_in_any_order_give_the_same_tags():
    tokens = ["Paris", "and", "Rome"]
    assert _tags(tokens, [("LOC", 10, 14), ("LOC", 0, 5)]) == ["B-LOC", "O", "B-LOC"]


def test_to_iob1():
    assert to_iob1(["B-PER", "I-PER", "B-PER", "B-LOC", "O", "B-LOC"]) == ["I-PER", "I-PER", "B-PER", "I-LOC", "O",
                                                                           "I-LOC"]


def _scores(f1: float, accuracy: float = 0.9) -> Scores:
    return Scores(Figures(f1, f1, f1, 10), {"PER": Figures(f1, f1, f1, 10)}, accuracy)


def test_thresholds():
    assert failures(_scores(0.9), _scores(0.9), 0.9, 0.0) == []
    assert failures(_scores(0.9), None, 1.01, None) == ["served F1 0.9000 is below --min-f1 1.01"]
    assert failures(_scores(0.9), _scores(0.95), None, 0.01) == [
        "served F1 differs from in-process F1 by -0.0500, more than --max-delta 0.01"]
    assert failures(_scores(0.9), _scores(0.905), None, 0.01) == []


def test_report_and_table():
    sentences = parse_conll(IOB2_FILE.splitlines(), "small.conll")
    gold = [s.tags for s in sentences]
    served = Side("grpc localhost:8001", score(gold, predicted_tags(sentences, ENTITIES, Scheme.IOB2)), 1.5)
    local = Side("transformers pipeline on fixture", score(gold, gold), 3.0)
    result = json.loads(json.dumps(report("small.conll", sentences, Scheme.IOB2, "first", served, local, [])))
    assert (result["sentences"], result["tokens"], result["entities"]) == (3, 19, 6)
    assert result["served"]["overall"] == {"precision": 0.6, "recall": 0.5, "f1": 0.6 / 1.1, "support": 6}
    assert result["in_process"]["overall"]["f1"] == 1.0
    assert result["difference"]["f1"] == pytest.approx(0.6 / 1.1 - 1)
    assert result["passed"] is True
    lines = table(result).splitlines()
    assert lines[0] == "small.conll: 3 sentences, 19 tokens, 6 entities (IOB2), aggregation first"
    assert lines[4].split() == ["type", "support", "served", "in-proc", "served", "in-proc", "served", "in-proc",
                                "Δ", "f1"]
    assert lines[5].split() == ["LOC", "2", "0.3333", "1.0000", "0.5000", "1.0000", "0.4000", "1.0000", "-0.6000"]
    assert lines[9].split() == ["overall", "6", "0.6000", "1.0000", "0.5000", "1.0000", "0.5455", "1.0000",
                                "-0.4545"]
    assert lines[10] == "token accuracy: served 0.8421, in-process 1.0000, Δ -0.1579"
    alone = table(report("small.conll", sentences, Scheme.IOB2, "first", served, None, [])).splitlines()
    assert alone[9].split() == ["overall", "6", "0.6000", "0.5000", "0.5455"]


# The command's errors: one line on stderr, exit code 2 for the caller's mistakes, 1 for what failed.

def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def conll(tmp_path):
    path = tmp_path / "small.conll"
    path.write_text(IOB2_FILE)
    return path


@pytest.mark.parametrize(("args", "message"), [
    ([], "eval: error: give a CoNLL-format file or --conll2003 (one of them)"),
    (["{conll}", "--conll2003"], "eval: error: give a CoNLL-format file or --conll2003 (one of them)"),
    (["{conll}", "--model", "fixture", "--strategy", "none"],
     "eval: error: --strategy none gives tokens, not entities: choose simple, first, average or max"),
    (["{conll}"], "eval: error: --model is needed for the in-process side (the served repository holds no PyTorch "
                  "weights): pass the checkpoint it was exported from, or --no-in-process"),
    (["{conll}", "--no-in-process", "--max-delta", "0.01"],
     "eval: error: --max-delta compares with the in-process side: drop --no-in-process"),
    (["{conll}", "--no-in-process", "--scheme", "iob1"],
     "eval: error: {conll}:1: B-PER after O, which IOB1 does not allow (B- only separates two entities of one "
     "type: --scheme iob2, or leave --scheme out)"),
    (["{bad}", "--no-in-process"], "eval: error: {bad}:2: unknown tag 'B_LOC' (expected O, B-TYPE or I-TYPE)"),
    (["{missing}", "--no-in-process"], "eval: error: {missing}: No such file or directory"),
    (["{conll}", "--no-in-process", "--url", "http://localhost:8001"],
     "eval: error: url 'http://localhost:8001' must be host:port without a scheme (choose the protocol with "
     "protocol=), or dns:///name:port alone"),
])
def test_the_caller_s_mistakes_are_one_line_and_exit_code_2(conll, tmp_path, args, message):
    bad = tmp_path / "bad.conll"
    bad.write_text("Berlin B-LOC\nParis B_LOC\n")
    paths = {"conll": conll, "bad": bad, "missing": tmp_path / "missing.conll"}
    code, stdout, stderr = _run(*(a.format(**paths) for a in args))
    assert (code, stdout, stderr) == (2, "", message.format(**paths) + "\n")


def test_no_server_is_one_line_and_exit_code_1(conll):
    code, stdout, stderr = _run(str(conll), "--no-in-process", "--url", f"localhost:{free_ports().grpc}",
                                "--retries", "0")
    assert (code, stdout) == (1, "")
    assert stderr.startswith("eval: error: cannot reach localhost:") and stderr.count("\n") == 1


def test_conll2003_without_datasets_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    code, stdout, stderr = _run("--conll2003", "--no-in-process")
    assert (code, stdout) == (1, "")
    assert stderr == ("eval: error: --conll2003 needs the datasets library: install the eval extra (make setup, or "
                      "pip install -e '.[eval]'), or pass a CoNLL-format file\n")


def test_conll2003_without_the_hub_is_one_line(monkeypatch):
    pytest.importorskip("datasets")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused, online or not
    code, stdout, stderr = _run("--conll2003", "--no-in-process")
    assert (code, stdout) == (1, "")
    assert stderr.startswith("eval: error: cannot reach 'lhoestq/conll2003' on the Hugging Face Hub (")
    assert stderr.endswith("): pass a CoNLL-format file, or set HF_HUB_OFFLINE=1 if it is in the local cache\n")
    assert stderr.count("\n") == 1


def test_an_unknown_model_is_one_line(conll, tmp_path):
    code, stdout, stderr = _run(str(conll), "--model", str(tmp_path), "--url", f"localhost:{free_ports().grpc}")
    assert (code, stdout) == (1, "")
    assert stderr == f"eval: error: --model {tmp_path}: {tmp_path} has no config.json: not a Hugging Face checkpoint\n"


def test_conll2003_rows_become_sentences_with_tag_names(monkeypatch):
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import constants

    from triton_ner.evaluate.conll import CONLL2003_TAGS, load_conll2003

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(CONLL2003_TAGS)))})
    rows = datasets.Dataset.from_dict({"tokens": [["-DOCSTART-"], ["EU", "rejects", "German", "call"]],
                                       "ner_tags": [[0], [3, 0, 7, 0]]}, features=features)
    asked = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no probe of the Hub: the "cache" answers
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: asked.append((name, split)) or rows)
    sentences = load_conll2003()
    assert asked == [("lhoestq/conll2003", "test")]
    assert [(s.tokens, s.tags) for s in sentences] == [(("EU", "rejects", "German", "call"),
                                                        ("B-ORG", "O", "B-MISC", "O"))]
    assert detect_scheme(sentences) is Scheme.IOB2


def test_the_in_process_side_without_pytorch_names_what_to_install(conll):
    """The ``eval`` extra alone (no PyTorch, no transformers): one line, the extra to add, or --no-in-process."""
    import subprocess
    import sys

    code = ("import sys\nfor name in ('transformers', 'torch'):\n    sys.modules[name] = None\n"
            "from triton_ner.evaluate.scores import app\nsys.argv[0] = 'ner-eval'\napp()\n")
    done = subprocess.run([sys.executable, "-c", code, str(conll), "--model", "fixture", "--url",
                           f"localhost:{free_ports().grpc}"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("eval: error: the in-process side needs PyTorch and transformers (transformers is missing): "
                           "pip install 'distilbert-ner-triton[eval,export]', or pass --no-in-process\n")

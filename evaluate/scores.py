"""``ner-eval`` (``python -m triton_ner.evaluate``): accuracy of the served model on CoNLL-format data, beside the
same checkpoint in process.

Each sentence's tokens are joined by single spaces and sent through the served ``ner`` ensemble; the entities'
character spans come back and are mapped onto the tokens (a token that overlaps an entity takes its type: ``B-``
on the entity's first token, ``I-`` on the others), and seqeval scores entity-level precision, recall and F1 per
type and overall, and token accuracy. The same checkpoint run by ``transformers.pipeline("token-classification")``
on the same sentences, through the same mapping, gives the reference figures printed beside them.

Scoring: predictions are written in the data's scheme (IOB1 or IOB2) and both sides are scored with seqeval's
default mode, the chunking of the CoNLL shared task's ``conlleval`` (an ``I-`` after ``O`` or after another type
opens an entity), which reads IOB1 and IOB2 alike and is what the model card's figures come from. Gold tags are
checked to be valid in their scheme and predictions are valid by construction, so seqeval's strict mode with the
data's scheme would give the same entities. Token accuracy compares the tags in the data's scheme.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from triton_ner import cli
from triton_ner.client.errors import ClientError
from triton_ner.client import options
from triton_ner.client.library import DEFAULT_PORTS, NerClient, Protocol
from triton_ner.client.render import progress as progress_bar
from triton_ner.core.parameters import Strategy

app = cli.command()

DOCSTART = "-DOCSTART-"
TAG = re.compile(r"(?:O|[BI]-\S+)\Z")
CONLL2003_DATASET = "lhoestq/conll2003"  # CoNLL-2003 as data files, loadable without a dataset script
# Hugging Face's conll2003 label order, for a copy whose ner_tags are integers without names.
CONLL2003_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
HUB_TIMEOUT_S = 5.0

Entities = list[dict[str, Any]]


class Scheme(str, Enum):
    """How entities are tagged. IOB2: every entity starts with ``B-``. IOB1 (the original CoNLL-2003 files):
    ``I-`` throughout, ``B-`` only on the first token of an entity that directly follows one of the same type."""

    IOB1 = "iob1"
    IOB2 = "iob2"


class DataError(ValueError):
    """Data that cannot be evaluated; the message names the file and the line."""


class DataUnavailable(RuntimeError):
    """A data set that cannot be loaded here (no ``datasets`` library, no Hub); the message is one line."""


@dataclass(frozen=True)
class Sentence:
    """Tokens with their gold tags, and the line of each token in its file (empty for a Hub data set)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    lines: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        """What is sent to the model: the tokens joined by single spaces."""
        return " ".join(self.tokens)

    def where(self, index: int, source: str) -> str:
        return f"{source}:{self.lines[index]}" if self.lines else f"{source}: token {index + 1}"


@dataclass(frozen=True)
class Figures:
    """Entity-level scores of one type, or of all types (micro average); ``support`` is the gold entities."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    overall: Figures
    types: dict[str, Figures]
    accuracy: float


# Reading

def parse_conll(lines: Iterable[str], source: str = "<data>") -> list[Sentence]:
    """Sentences of CoNLL-format lines: one token per line, the token in the first column and its tag in the last,
    every line with the same number of columns, a blank line between sentences; ``-DOCSTART-`` lines are skipped.

    Raises:
        DataError: A token without a tag, a line with another number of columns than the first, a tag that is not
            ``O``, ``B-TYPE`` or ``I-TYPE``, or no sentence at all; the message names the line.
    """
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    numbers: list[int] = []
    columns = 0
    number = 0

    def close() -> None:
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(tags), tuple(numbers)))
            tokens.clear(), tags.clear(), numbers.clear()

    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            close()
            continue
        if len(fields) == 1:
            raise DataError(f"{source}:{number}: token {fields[0]!r} has no tag (expected the token first and its "
                            "tag in the last column)")
        columns = columns or len(fields)
        if len(fields) != columns:
            raise DataError(f"{source}:{number}: {len(fields)} columns where the first line has {columns}")
        if not TAG.match(fields[-1]):
            raise DataError(f"{source}:{number}: unknown tag {fields[-1]!r} (expected O, B-TYPE or I-TYPE)")
        tokens.append(fields[0])
        tags.append(fields[-1])
        numbers.append(number)
    close()
    if not sentences:
        where = "the file is empty" if number == 0 else "only blank lines and -DOCSTART-"
        raise DataError(f"{source}:{max(number, 1)}: no sentences ({where})")
    return sentences


def read_conll(path: Path) -> list[Sentence]:
    """:func:`parse_conll` of a UTF-8 file."""
    try:
        with path.open(encoding="utf-8") as file:
            return parse_conll(file, str(path))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: {error.strerror or error}") from None


def _opens_entity(tag: str, previous: str) -> bool:
    """An ``I-`` tag that starts an entity: after ``O``, at the sentence's start or after another type."""
    return tag.startswith("I-") and previous[2:] != tag[2:]


def detect_scheme(sentences: Iterable[Sentence]) -> Scheme:
    """IOB1 if some entity starts with ``I-``; otherwise IOB2 (also when the data cannot tell)."""
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            if _opens_entity(tag, previous):
                return Scheme.IOB1
            previous = tag
    return Scheme.IOB2


def check_scheme(sentences: Iterable[Sentence], scheme: Scheme, source: str = "<data>") -> None:
    """Raise :class:`DataError` at the first tag that ``scheme`` does not allow."""
    for sentence in sentences:
        previous = "O"
        for index, tag in enumerate(sentence.tags):
            if scheme is Scheme.IOB2 and _opens_entity(tag, previous):
                raise DataError(f"{sentence.where(index, source)}: {tag} opens an entity, which IOB2 does not "
                                "allow (the data looks IOB1: --scheme iob1, or leave --scheme out)")
            if scheme is Scheme.IOB1 and tag.startswith("B-") and previous[2:] != tag[2:]:
                raise DataError(f"{sentence.where(index, source)}: {tag} after {previous}, which IOB1 does not "
                                "allow (B- only separates two entities of one type: --scheme iob2, or leave "
                                "--scheme out)")
            previous = tag


def load_conll2003(dataset: str = CONLL2003_DATASET, split: str = "test") -> list[Sentence]:
    """CoNLL-2003 from the Hugging Face Hub with the ``datasets`` library (IOB2 tags).

    Raises:
        DataUnavailable: ``datasets`` is not installed, the Hub cannot be reached (set ``HF_HUB_OFFLINE=1`` to
            use a copy in the local cache), or the data set cannot be loaded.
    """
    try:
        import datasets
    except ImportError:
        raise DataUnavailable("--conll2003 needs the datasets library: install the eval extra (make setup, or "
                              "pip install -e '.[eval]'), or pass a CoNLL-format file") from None
    from huggingface_hub import HfApi, constants

    if not constants.HF_HUB_OFFLINE:
        # A quick probe: without it, an unreachable Hub costs datasets' retries (half a minute) and their logs.
        try:
            HfApi().dataset_info(dataset, timeout=HUB_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 (any failure here means "not from the Hub")
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise DataUnavailable(f"cannot reach {dataset!r} on the Hugging Face Hub ({reason}): pass a "
                                  "CoNLL-format file, or set HF_HUB_OFFLINE=1 if it is in the local cache") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        rows = datasets.load_dataset(dataset, split=split)
    except Exception as error:  # noqa: BLE001
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise DataUnavailable(f"cannot load {dataset!r} split {split!r}: {reason}") from None
    feature = rows.features.get("ner_tags")
    names = getattr(getattr(feature, "feature", None), "names", None) or CONLL2003_TAGS
    sentences = []
    for row in rows:
        tags = tuple(tag if isinstance(tag, str) else names[tag] for tag in row["ner_tags"])
        if row["tokens"] and row["tokens"][0] != DOCSTART:
            sentences.append(Sentence(tuple(row["tokens"]), tags))
    return sentences


# Spans and tags

def token_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` of each token in the tokens joined by single spaces (:attr:`Sentence.text`)."""
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return spans


def to_iob1(tags: Sequence[str]) -> list[str]:
    """IOB2 tags in IOB1: ``B-`` only where an entity directly follows one of the same type."""
    converted, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        converted.append(tag)
        previous = tag
    return converted


def tags_from_entities(spans: Sequence[tuple[int, int]], entities: Iterable[dict],
                       scheme: Scheme = Scheme.IOB2) -> list[str]:
    """Tags of the tokens at ``spans`` from the pipeline's entities (``entity_group``, ``start``, ``end``).

    A token that overlaps an entity takes the entity's type, even if the entity covers only part of it (a word the
    tokenizer split, ``Berlin`` in ``Berlin-based``); a token that overlaps several takes the first. The first
    token of each entity gets ``B-``, the others ``I-``; in IOB1, ``B-`` stays only between two entities of one
    type.
    """
    owner: list[int | None] = [None] * len(spans)
    kinds: list[str] = []
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        if entity["end"] <= entity["start"]:
            continue
        kinds.append(entity["entity_group"])
        for index, (start, end) in enumerate(spans):
            if owner[index] is None and start < entity["end"] and entity["start"] < end:
                owner[index] = len(kinds) - 1
    tags = []
    for index, entity in enumerate(owner):
        if entity is None:
            tags.append("O")
        else:
            prefix = "I-" if index > 0 and owner[index - 1] == entity else "B-"
            tags.append(prefix + kinds[entity])
    return to_iob1(tags) if scheme is Scheme.IOB1 else tags


def predicted_tags(sentences: Sequence[Sentence], entities: Sequence[Entities], scheme: Scheme) -> list[list[str]]:
    """:func:`tags_from_entities` of every sentence."""
    return [tags_from_entities(token_spans(s.tokens), found, scheme) for s, found in zip(sentences, entities)]


# Scoring

def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Scores:
    """Entity-level precision, recall and F1 per type and overall (micro average), and token accuracy, with
    seqeval's default (conlleval) chunking; an undefined ratio (nothing predicted, nothing to find) is 0."""
    from seqeval.metrics import accuracy_score, classification_report

    gold, predicted = [list(tags) for tags in gold], [list(tags) for tags in predicted]
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)

    def figures(row: dict) -> Figures:
        return Figures(float(row["precision"]), float(row["recall"]), float(row["f1-score"]), int(row["support"]))

    types = {name: figures(row) for name, row in report.items() if not name.endswith(" avg")}
    return Scores(figures(report["micro avg"]), types, float(accuracy_score(gold, predicted)))


def count_entities(sentences: Iterable[Sentence]) -> int:
    """Gold entities, chunked as :func:`score` chunks them."""
    from seqeval.metrics.sequence_labeling import get_entities

    return sum(len(get_entities(list(s.tags))) for s in sentences)


def failures(served: Scores, in_process: Scores | None, min_f1: float | None, max_delta: float | None) -> list[str]:
    """What breaks the thresholds, one line each: the served F1 under ``min_f1``, or further than ``max_delta``
    from the in-process F1."""
    found = []
    if min_f1 is not None and served.overall.f1 < min_f1:
        found.append(f"served F1 {served.overall.f1:.4f} is below --min-f1 {min_f1:g}")
    if max_delta is not None and in_process is not None:
        delta = served.overall.f1 - in_process.overall.f1
        if abs(delta) > max_delta:
            found.append(f"served F1 differs from in-process F1 by {delta:+.4f}, more than --max-delta "
                         f"{max_delta:g}")
    return found


# Predictions

def predict_served(texts: Iterable[str], strategy: str, advance: Callable[[], None] = lambda: None,
                   **client_options) -> list[Entities]:
    """Entities of each text from the served ensemble, through :class:`client.NerClient`."""
    found = []
    with NerClient(**client_options) as client:
        client.check()
        for entities in client.predict_iter(texts, aggregation_strategy=strategy):
            found.append(entities)
            advance()
    return found


def load_pipeline(model: str | Path, strategy: str):
    """``transformers.pipeline("token-classification")`` on a Hub id, a local checkpoint or ``fixture``.

    The checkpoint goes through the exporter's resolution: a Hub id is looked up with a short timeout and falls
    back to the local cache, and a folder must be a token classifier with weights.

    Raises:
        DataUnavailable: The checkpoint cannot be found or loaded, or PyTorch or transformers is not installed;
            the message is one line.
    """
    try:
        from transformers import pipeline
        from transformers.utils import logging

        from triton_ner.export.source import ExportError, resolve
    except ImportError as error:
        raise DataUnavailable(f"the in-process side needs PyTorch and transformers ({error.name} is missing): "
                              "pip install 'distilbert-ner-triton[eval,export]', or pass --no-in-process") from None

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        checkpoint = resolve(str(model))
        return pipeline("token-classification", model=str(checkpoint.path), aggregation_strategy=strategy)
    except (ExportError, OSError, ValueError) as error:
        raise DataUnavailable(f"--model {model}: {str(error).splitlines()[0]}") from None


def predict_in_process(pipe, texts: Iterable[str], advance: Callable[[], None] = lambda: None) -> list[Entities]:
    """Entities of each text from the pipeline; a text longer than one window is cut with the server's stride."""
    from triton_ner.core.tokenization import DEFAULT_STRIDE

    limit = pipe.tokenizer.model_max_length
    found = []
    for text in texts:
        long = len(pipe.tokenizer(text, truncation=False)["input_ids"]) > limit
        found.append(pipe(text, stride=DEFAULT_STRIDE) if long else pipe(text))
        advance()
    return found


# Output

@dataclass
class Side:
    """One evaluated side: where the predictions came from, its scores and how long it took."""

    source: str
    scores: Scores
    seconds: float


def report(data: str, sentences: Sequence[Sentence], scheme: Scheme, strategy: str, served: Side,
           in_process: Side | None, problems: Sequence[str]) -> dict[str, Any]:
    """Everything the command found, as the JSON document of ``--json``."""

    def side(s: Side | None) -> dict | None:
        if s is None:
            return None
        return {"source": s.source, "seconds": round(s.seconds, 3), "accuracy": s.scores.accuracy,
                "overall": asdict(s.scores.overall), "types": {k: asdict(v) for k, v in s.scores.types.items()}}

    difference = None
    if in_process is not None:
        a, b = served.scores, in_process.scores
        difference = {"precision": a.overall.precision - b.overall.precision,
                      "recall": a.overall.recall - b.overall.recall, "f1": a.overall.f1 - b.overall.f1,
                      "accuracy": a.accuracy - b.accuracy}
    return {"data": data, "sentences": len(sentences), "tokens": sum(len(s.tokens) for s in sentences),
            "entities": count_entities(sentences), "scheme": scheme.name, "aggregation_strategy": strategy,
            "served": side(served), "in_process": side(in_process), "difference": difference,
            "failures": list(problems), "passed": not problems}


def table(result: dict[str, Any]) -> str:
    """The figures as a text table: served and in-process side by side, and the difference of F1."""
    served, local = result["served"], result["in_process"]
    sides = [("served", served)] + ([("in-proc", local)] if local else [])
    metrics = ("precision", "recall", "f1")
    width = 9 * len(sides)  # a column of 8 and a space per side
    lines = [f"{result['data']}: {result['sentences']:,} sentences, {result['tokens']:,} tokens, "
             f"{result['entities']:,} entities ({result['scheme']}), aggregation {result['aggregation_strategy']}",
             f"served: {served['source']}" + (f"; in-process: {local['source']}" if local else ""), "",
             f"{'':18}" + "".join(f"  {metric:^{width - 1}}" for metric in metrics).rstrip(),
             f"{'type':<10}{'support':>8}" + "".join("  " + " ".join(f"{name:>8}" for name, _ in sides)
                                                     for _ in metrics) + (f"  {'Δ f1':>8}" if local else "")]
    absent = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    rows = [(name, [side["types"].get(name, absent) for _, side in sides])
            for name in sorted(set().union(*(side["types"] for _, side in sides)))]
    rows.append(("overall", [side["overall"] for _, side in sides]))
    for name, figures in rows:
        line = f"{name:<10}{figures[0]['support']:>8,}"
        line += "".join("  " + " ".join(f"{f[metric]:>8.4f}" for f in figures) for metric in metrics)
        if local:
            line += f"  {figures[0]['f1'] - figures[1]['f1']:>+8.4f}"
        lines.append(line)
    accuracy = f"token accuracy: served {served['accuracy']:.4f}"
    seconds = f"time: served {served['seconds']:.1f} s"
    if local:
        accuracy += f", in-process {local['accuracy']:.4f}, Δ {served['accuracy'] - local['accuracy']:+.4f}"
        seconds += f", in-process {local['seconds']:.1f} s"
    return "\n".join(lines + [accuracy, seconds])


# Command line


@app.command()
def main(
    data: Annotated[Path | None, typer.Argument(
        help="CoNLL-format file: one token per line, the token in the first column and its tag (IOB1 or IOB2) in "
             "the last, a blank line between sentences; -DOCSTART- lines are skipped.", show_default=False)]
    = None,
    conll2003: Annotated[bool, typer.Option(
        "--conll2003", help="Evaluate on CoNLL-2003 from the Hugging Face Hub (the datasets library, in the eval "
                            "extra) instead of a file.")] = False,
    dataset: Annotated[str, typer.Option(help="Hub data set of --conll2003 (tokens and ner_tags columns).")]
    = CONLL2003_DATASET,
    split: Annotated[str, typer.Option(help="Split of --conll2003.")] = "test",
    scheme: Annotated[Scheme | None, typer.Option(
        help="Tagging scheme of the data (default: detected: IOB1 if an entity starts with I-, else IOB2).",
        show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N sentences only.",
                                              show_default=False)] = None,
    url: options.Url = None,
    protocol: options.ProtocolOption = Protocol.GRPC,
    strategy: Annotated[Strategy, typer.Option(
        help="Aggregation strategy, the same on both sides (not none: it gives tokens, not entities).")]
    = Strategy.FIRST,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per request.")] = 64,
    concurrency: options.Concurrency = 4,
    timeout: options.Timeout = 60.0,
    retries: options.Retries = 3,
    ssl: options.Ssl = False,
    root_cert: options.RootCert = None,
    client_cert: options.ClientCert = None,
    client_key: options.ClientKey = None,
    header: options.Header = None,
    model: Annotated[str | None, typer.Option(
        help="The checkpoint the served repository was exported from, run in process with the transformers "
             "pipeline: Hub id, local folder, or 'fixture'. Needed unless --no-in-process: the repository holds "
             "ONNX or TorchScript, not the PyTorch weights.", show_default=False)] = None,
    in_process: Annotated[bool, typer.Option(
        "--in-process/--no-in-process", help="Also evaluate --model in process and show the difference.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of the table.")]
    = False,
    min_f1: Annotated[float | None, typer.Option(
        min=0.0, help="Exit code 1 if the served overall F1 is below this.", show_default=False)] = None,
    max_delta: Annotated[float | None, typer.Option(
        min=0.0, help="Exit code 1 if the served overall F1 differs from the in-process F1 by more than this.",
        show_default=False)] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bars on stderr (default: when stderr is a terminal).",
        show_default=False)] = None,
) -> None:
    """Entity-level precision, recall and F1 (seqeval, per type and overall) and token accuracy of the model
    served by Triton on CoNLL-format data, beside the same checkpoint run in process by the transformers pipeline.

    Each sentence is sent as its tokens joined by single spaces; the entities' character spans are mapped back
    onto the tokens (a token overlapping an entity takes its type) and written in the data's scheme.

    Exit code 0 when done; 1 when the figures break --min-f1 or --max-delta, or the server, the model or the data
    set cannot be reached; 2 for a malformed file or conflicting options. Each error is one line on stderr.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if (data is None) == (not conll2003):
        raise cli.fail("eval", "give a CoNLL-format file or --conll2003 (one of them)", cli.USAGE)
    if strategy is Strategy.NONE:
        raise cli.fail("eval", "--strategy none gives tokens, not entities: choose simple, first, average or max",
                       cli.USAGE)
    if in_process and model is None:
        raise cli.fail("eval", "--model is needed for the in-process side (the served repository holds no PyTorch "
                       "weights): pass the checkpoint it was exported from, or --no-in-process", cli.USAGE)
    if max_delta is not None and not in_process:
        raise cli.fail("eval", "--max-delta compares with the in-process side: drop --no-in-process", cli.USAGE)
    show = progress if progress is not None else sys.stderr.isatty()
    try:
        sentences = read_conll(data) if data is not None else load_conll2003(dataset, split)
        source = str(data) if data is not None else f"{dataset} ({split})"
        sentences = sentences[:limit] if limit else sentences
        scheme = scheme or detect_scheme(sentences)
        check_scheme(sentences, scheme, source)
    except DataError as error:
        raise cli.fail("eval", str(error), cli.USAGE) from None
    except DataUnavailable as error:
        raise cli.fail("eval", str(error), cli.FAILED) from None
    gold = [list(s.tags) for s in sentences]
    texts = [s.text for s in sentences]
    try:
        pipe = load_pipeline(model, strategy.value) if in_process else None  # first: a bad --model fails fast
        started = time.monotonic()
        with progress_bar(show, "eval: served", "sentences", len(texts)) as advance:
            entities = predict_served(texts, strategy.value, advance, **options.client_settings(
                url, protocol, timeout, retries, batch_size, concurrency, ssl, root_cert, client_cert, client_key,
                header))
        client_url = url or f"localhost:{DEFAULT_PORTS[protocol]}"
        served = Side(f"{protocol.value} {client_url}", score(gold, predicted_tags(sentences, entities, scheme)),
                      time.monotonic() - started)
        local = None
        if pipe is not None:
            started = time.monotonic()
            with progress_bar(show, "eval: in-process", "sentences", len(texts)) as advance:
                entities = predict_in_process(pipe, texts, advance)
            local = Side(f"transformers pipeline on {model}",
                         score(gold, predicted_tags(sentences, entities, scheme)), time.monotonic() - started)
    except KeyboardInterrupt:
        raise cli.interrupted("eval") from None
    except (ClientError, DataUnavailable) as error:
        raise cli.fail("eval", str(error), cli.FAILED) from None
    except ValueError as error:  # the client's settings (a URL with a scheme, TLS over HTTP)
        raise cli.fail("eval", str(error), cli.USAGE) from None
    problems = failures(served.scores, local.scores if local else None, min_f1, max_delta)
    result = report(source, sentences, scheme, strategy.value, served, local, problems)
    print(json.dumps(result, indent=2) if json_output else table(result))
    for problem in problems:
        print(f"eval: {problem}", file=sys.stderr)
    if problems:
        raise typer.Exit(cli.FAILED)


if __name__ == "__main__":
    app()

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
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from triton_ner import cli
from triton_ner.client import options
from triton_ner.client.errors import ClientError
from triton_ner.client.library import NerClient
from triton_ner.client.render import progress as progress_bar
from triton_ner.core.parameters import Strategy
from triton_ner.evaluate.conll import (
    CONLL2003_DATASET,
    DataError,
    DataUnavailable,
    Scheme,
    Sentence,
    check_scheme,
    detect_scheme,
    load_conll2003,
    read_conll,
    tags_from_entities,
    token_spans,
)

if TYPE_CHECKING:
    from transformers import TokenClassificationPipeline

app = cli.command()


Entities = list[dict[str, Any]]


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


# Spans and tags


def predicted_tags(sentences: Sequence[Sentence], entities: Sequence[Entities], scheme: Scheme) -> list[list[str]]:
    """:func:`tags_from_entities` of every sentence."""
    return [tags_from_entities(token_spans(s.tokens), found, scheme)
            for s, found in zip(sentences, entities, strict=True)]


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
                   **client_options: Any) -> list[Entities]:
    """Entities of each text from the served ensemble, through :class:`client.NerClient`."""
    found = []
    with NerClient(**client_options) as client:
        client.check()
        for entities in client.predict_iter(texts, aggregation_strategy=strategy):
            found.append(entities)
            advance()
    return found


def load_pipeline(model: str | Path, strategy: str) -> TokenClassificationPipeline:
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


def predict_in_process(pipe: TokenClassificationPipeline, texts: Iterable[str],
                       advance: Callable[[], None] = lambda: None) -> list[Entities]:
    """Entities of each text from the pipeline; a text longer than one window is cut with the server's stride."""
    from triton_ner.core.tokenization import DEFAULT_STRIDE

    assert pipe.tokenizer is not None  # a token-classification pipeline always has one
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
@options.connection_options
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
    strategy: Annotated[Strategy, typer.Option(
        help="Aggregation strategy, the same on both sides (not none: it gives tokens, not entities).")]
    = Strategy.FIRST,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per request.")] = 64,
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
    connection: options.Connection = options.Connection(),
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
        # First: a bad --model fails fast (in_process without a model was refused above).
        pipe = load_pipeline(model, strategy.value) if in_process and model is not None else None
        started = time.monotonic()
        with progress_bar(show, "eval: served", "sentences", len(texts)) as advance:
            entities = predict_served(texts, strategy.value, advance, **connection.client_settings(batch_size))
        served = Side(f"{connection.protocol.value} {connection.address}",
                      score(gold, predicted_tags(sentences, entities, scheme)),
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

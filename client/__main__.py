"""``python -m triton_ner.client`` (``ner-client``): entities of texts from arguments, stdin or files, as JSON lines
in input order, or highlighted in the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from triton_ner import cli
from triton_ner.client import options
from triton_ner.client.async_client import AsyncNerClient
from triton_ner.client.errors import ClientError
from triton_ner.client.inputs import count_texts, read_texts
from triton_ner.client.render import progress as progress_bar
from triton_ner.core.parameters import Strategy

app = cli.command()


class Output(str, Enum):
    AUTO = "auto"
    JSON = "json"
    PRETTY = "pretty"


def parse_labels(value: str | None) -> list[str] | None:
    """``["O", "MISC"]`` from ``"O,MISC"``; ``""`` is no label (keep every entity); None the server's default."""
    if value is None:
        return None
    return [label.strip() for label in value.split(",") if label.strip()]



async def _run(client: AsyncNerClient, texts: Generator[str, None, None], total: int | None, pretty: bool,
               show_progress: bool, **parameters: Any) -> tuple[int, int]:
    """Print the entities of every text in order; return how many texts and entities."""
    from rich.console import Console

    from triton_ner.client.render import highlighted

    console = Console(highlight=False) if pretty else None
    in_flight: deque[str] = deque()

    def remembered(texts: Iterable[str]) -> Iterator[str]:
        # The pretty view shows each text with its entities: keep the texts whose requests are in flight.
        for text in texts:
            in_flight.append(text)
            yield text

    count = found = 0
    async with client:
        await client.check()
        with closing(texts), progress_bar(show_progress, "client", "texts", total) as advance:
            async for entities in client.predict_iter(remembered(texts), **parameters):
                text = in_flight.popleft()
                if console is None:
                    sys.stdout.write(json.dumps(entities, ensure_ascii=False) + "\n")
                else:
                    console.print(highlighted(text, entities), soft_wrap=True)
                count += 1
                found += len(entities)
                advance()
    return count, found


@app.command()
@options.connection_options
def main(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Texts. With none and no --file, texts are read from stdin, one per line.", show_default=False)]
    = None,
    file: Annotated[list[Path] | None, typer.Option(
        "--file", "-f", help="File of texts, repeatable: .jsonl (a \"text\" field per line) or any other (one "
                             "text per line); - is stdin.", show_default=False)] = None,
    strategy: Annotated[Strategy | None, typer.Option(
        help="Aggregation strategy, as in the transformers pipeline (default: the server's, simple)",
        show_default=False)] = None,
    ignore_labels: Annotated[str | None, typer.Option(
        help="Labels to leave out, comma-separated; '' keeps all (default: the server's, O)",
        show_default=False)] = None,
    stride: Annotated[int | None, typer.Option(
        min=0, help="Tokens shared by the windows of a long text (default: the server's, 128)",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Texts per request (a request may hold at most 1,024 windows).")] = 64,
    output: Annotated[Output, typer.Option(
        help="json: one JSON list of entities per line; pretty: texts with entities highlighted; auto: pretty "
             "when stdout is a terminal.")] = Output.AUTO,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (in a terminal) and a summary on stderr (default: "
                                         "when stderr is a terminal and stdout is not)", show_default=False)] = None,
    connection: options.Connection = options.Connection(),
) -> None:
    """Find the entities of texts with the ner model served by Triton, over gRPC or HTTP.

    Prints one line per text, in input order: a JSON list of its entities as the transformers pipeline gives them.

    In a terminal, shows each text with its entities highlighted by type instead (--output).

    On failure: one line on stderr, exit code 1. Ctrl-C stops, exit code 130.
    """
    # Before gRPC loads (with the first client): its C core would print TLS handshake details on stderr, around
    # the one line of an error.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    pretty = output is Output.PRETTY or (output is Output.AUTO and sys.stdout.isatty())
    show_progress = progress if progress is not None else sys.stderr.isatty() and not sys.stdout.isatty()
    if not texts and not file and sys.stdin.isatty():
        print("client: reading texts from stdin, one per line (Ctrl-D ends)", file=sys.stderr)
    started = time.monotonic()
    try:
        client = AsyncNerClient(**connection.client_settings(batch_size))
        total = count_texts(texts or [], file or [])
        count, found = asyncio.run(_run(client, read_texts(texts or [], file or [], sys.stdin), total, pretty,
                                        show_progress, aggregation_strategy=strategy,
                                        ignore_labels=parse_labels(ignore_labels), stride=stride))
    except KeyboardInterrupt:
        raise cli.interrupted("client") from None
    except BrokenPipeError:
        # The reader went away (| head): no traceback, and no second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except (ClientError, ValueError) as error:
        raise cli.fail("client", str(error)) from None
    if show_progress:
        seconds = time.monotonic() - started
        print(f"client: {count:,} texts, {found:,} entities in {seconds:.1f} s ({count / seconds:,.0f} texts/s)",
              file=sys.stderr)


if __name__ == "__main__":
    app()

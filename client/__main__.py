"""``python -m client "text" ...``: entities of each text as one JSON line, in input order."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from client.library import ClientError, NerClient

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; read from stdin, one per line, if none.")] = None,
    url: Annotated[str, typer.Option(help="host:port of the server.")] = "localhost:8001",
    protocol: Annotated[str, typer.Option(help="grpc or http.")] = "grpc",
    strategy: Annotated[str | None, typer.Option(help="Aggregation strategy: none, simple, first, average, "
                                                      "max (server default: simple).")] = None,
    stride: Annotated[int | None, typer.Option(help="Tokens shared by the windows of a long text "
                                                    "(server default: 128).")] = None,
) -> None:
    """Send texts to the served ner ensemble and print their entities as JSON lines."""
    lines = texts or [line.rstrip("\n") for line in sys.stdin]
    try:
        with NerClient(url, protocol) as client:
            results = client.predict(lines, aggregation_strategy=strategy, stride=stride) if lines else []
    except (ClientError, ValueError) as error:
        print(f"client: error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    for result in results:
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    app()

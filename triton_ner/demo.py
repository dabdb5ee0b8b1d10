"""``make demo``: export a model, start the local Triton, ask it over gRPC, print the entities, stop."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, cast

import typer

from triton_ner import cli
from triton_ner.core.names import DEFAULT_MODEL

SEED_SENTENCE = "My name is Wolfgang and I live in Berlin"
app = cli.command()


@app.command()
def main(
    model: Annotated[str, typer.Option(help="Hub id or local checkpoint folder; the fixture model is used if "
                                            "the Hub cannot be reached.", envvar="MODEL")] = DEFAULT_MODEL,
    output: Annotated[Path, typer.Option(help="Model repository to export into.")] = cli.REPOSITORY,
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to ask about.")] = None,
) -> None:
    """Export MODEL, serve it with Triton, send texts over gRPC and print the entities."""
    from triton_ner.client import ClientError, NerClient
    from triton_ner.client.library import Entities
    from triton_ner.core.errors import ServerError
    from triton_ner.export.assemble import build
    from triton_ner.export.source import ExportError, resolve
    from triton_ner.server.arguments import free_ports
    from triton_ner.server.launcher import TritonServer

    def say(message: str) -> None:
        cli.say("demo", message)

    started = time.perf_counter()
    with cli.one_line_errors("demo", ExportError, ServerError, ClientError):
        checkpoint = resolve(model, fallback_to_fixture=True)
        build(checkpoint, output, force=True, log=lambda m: say(f"export: {m}"))
        say("starting Triton")
        with TritonServer(output, free_ports()) as server:
            say(f"Triton ready on gRPC {server.grpc_url}")
            with NerClient(server.grpc_url) as client:
                asked = texts or [SEED_SENTENCE]
                found = cast(list[Entities], client.predict(asked))  # a list of texts: a list per text
                for text, entities in zip(asked, found, strict=True):
                    print(f"\n{text}")
                    for entity in entities:
                        print(f"  {entity['entity_group']:<5} {entity['word']!r:<24} "
                              f"[{entity['start']}:{entity['end']}]  score {entity['score']:.3f}")
                    print(json.dumps(entities, ensure_ascii=False))
    say(f"done in {time.perf_counter() - started:.0f} s; the server is stopped")


if __name__ == "__main__":
    app()

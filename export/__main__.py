"""``python -m export``: a checkpoint to a Triton model repository, proven equal to PyTorch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from export.configs import ServingOptions
from export.source import BENCHMARK, FIXTURE, ExportError
from ner.names import DEFAULT_MODEL

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Annotated[str, typer.Option(help=f"Hub id, local checkpoint folder, '{FIXTURE}' (the built-in test "
                                            f"model) or '{BENCHMARK}' (full-size DistilBERT, random weights).",
                                       envvar="MODEL")] = DEFAULT_MODEL,
    revision: Annotated[str | None, typer.Option(help="Hub revision (commit) to pin.")] = None,
    output: Annotated[Path, typer.Option(help="Model repository to write.")] = Path("model_repository"),
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most windows (512-token rows) in one dynamic batch "
                                                             "and in one request.")] = ServingOptions.max_batch_size,
    instances: Annotated[int, typer.Option(min=1, help="Model-step instances.")] = ServingOptions.instances,
    force: Annotated[bool, typer.Option(help="Replace an existing export.")] = False,
    fallback_to_fixture: Annotated[bool, typer.Option(
        help="If the Hub cannot be reached, warn and export the fixture model.")] = False,
) -> None:
    """Export a token-classification checkpoint to ONNX inside a Triton model repository."""
    from export.repository import build
    from export.source import resolve

    def log(message: str) -> None:
        print(f"export: {message}", file=sys.stderr)

    try:
        checkpoint = resolve(model, revision, fallback_to_fixture)
        options = ServingOptions(max_batch_size=max_batch_size, instances=instances)
        manifest = build(checkpoint, output, options, force=force, log=log)
    except ExportError as error:
        print(f"export: error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    log(f"wrote {output} from {manifest['source']} in {manifest['export_seconds']} s")


if __name__ == "__main__":
    app()

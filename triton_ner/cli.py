"""The conventions every command shares (ner-export, ner-serve, ner-client, ner-eval, ner-demo, loadtest).

typer with ``Annotated`` options; an error is one line ``<command>: error: <why>`` on stderr and an exit code:
1 when the work failed (a server, a model or data that cannot be reached), 2 for the caller's mistake (as typer's
own usage errors). Never a traceback for a user mistake. :func:`say` and :func:`error` need no typer, for the
scripts meant for bare machines (``make gpu-check``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    import typer

FAILED = 1
USAGE = 2
# Where the commands write and read the exported repository unless told otherwise. model_repository/ of a
# checkout holds the models' code the export copies (committed); what the export writes is never committed.
REPOSITORY = Path("build/model_repository")
# Help written to a pipe (``--help | less``, a file) is plain text this wide: rich's boxed tables there are 80
# columns, with each option's help wrapped over several lines of a narrow column. COLUMNS set, or a terminal,
# keep rich's help at the terminal's width.
PIPED_HELP_WIDTH = 120


def command() -> typer.Typer:
    """A single-command typer application without shell completion or rich tracebacks, whose help reads when
    piped too (:data:`PIPED_HELP_WIDTH`)."""
    import typer

    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                       context_settings={"max_content_width": PIPED_HELP_WIDTH, "terminal_width": PIPED_HELP_WIDTH})


def say(prog: str, message: str) -> None:
    """One line on stderr, prefixed by the command's name."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def error(prog: str, message: str) -> None:
    """The one line of an error: ``<prog>: error: <message>`` on stderr."""
    say(prog, f"error: {message}")


def fail(prog: str, message: str, code: int = FAILED) -> typer.Exit:
    """Print ``<prog>: error: <message>`` and return the exit to raise (``raise fail(...) from None``)."""
    import typer

    error(prog, message)
    return typer.Exit(code)


def interrupted(prog: str) -> typer.Exit:
    """Ctrl-C: say so and return the exit to raise, with the shell's code for SIGINT."""
    import typer

    say(prog, "interrupted")
    return typer.Exit(130)


@contextmanager
def one_line_errors(prog: str, *errors: type[BaseException], code: int = FAILED) -> Iterator[None]:
    """Turn the expected ``errors`` of a command into one line and an exit code."""
    try:
        yield
    except errors as error:
        raise fail(prog, str(error), code) from None


def dataclass_options(settings: type, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator: the command gets an option for each field of the dataclass ``settings`` whose metadata has a
    ``help`` (the metadata are ``typer.Option``'s keywords, ``flags`` its names), after its own options, and
    receives their values as one ``settings`` instance named ``name``."""
    import typer

    hints = typing.get_type_hints(settings)
    options = {f.name: f for f in dataclasses.fields(settings) if "help" in f.metadata}

    def add_options(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        added = [inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default,
            annotation=Annotated[hints[field.name], typer.Option(
                *field.metadata.get("flags", ()), **{k: v for k, v in field.metadata.items() if k != "flags"})])
            for field in options.values()]

        @functools.wraps(command)
        def with_settings(**values: Any) -> None:
            given = settings(**{option: values.pop(option) for option in options})
            return command(**values, **{name: given})

        with_settings.__signature__ = own.replace(  # type: ignore[attr-defined]  # read by inspect.signature (typer)
            parameters=[p for p in own.parameters.values() if p.name != name] + added)
        return with_settings

    return add_options

"""Every command's help, piped (``--help | less``), reads as plain text of at most 120 columns."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from triton_ner.cli import PIPED_HELP_WIDTH

COMMANDS = ("ner-export", "ner-serve", "ner-client", "ner-eval", "ner-demo")


@pytest.mark.parametrize("command", COMMANDS)
def test_piped_help_is_plain_text_one_option_help_per_line(command):
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    done = subprocess.run([str(Path(sys.executable).parent / command), "--help"], capture_output=True, text=True,
                          env=environment, timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Usage: {command} ")
    assert max(len(line) for line in lines) <= PIPED_HELP_WIDTH
    assert not any(box in done.stdout for box in "╭│╰")
    # An option and the start of its help share a line, wrapped at the full width, not in a narrow column.
    options = [line for line in lines if line.startswith("  --") and len(line.split(maxsplit=2)) == 3]
    assert options and max(len(line) for line in options) > 80  # wider than rich's piped default


def test_dataclass_options_become_options_with_their_checks_and_reach_the_command_as_one_instance():
    from dataclasses import dataclass, field

    from typer.testing import CliRunner

    from triton_ner import cli
    from triton_ner.export.configs import ServingOptions

    @dataclass(frozen=True)
    class Knobs:
        size: int = field(default=4, metadata={"help": "How many.", "min": 1})
        name: str = field(default="a", metadata={"help": "Which.", "flags": ("--label", "-l")})
        hidden: float = 0.5  # no help: not an option

    got = []
    app = cli.command()

    @app.command()
    @cli.dataclass_options(Knobs, "knobs")
    def main(other: int = 0, knobs: Knobs = Knobs()) -> None:
        got.append((other, knobs))

    runner = CliRunner()
    assert runner.invoke(app, ["--other", "2", "--size", "9", "-l", "b"]).exit_code == 0
    assert runner.invoke(app, []).exit_code == 0
    assert got == [(2, Knobs(9, "b")), (0, Knobs())]
    refused = runner.invoke(app, ["--size", "0"])
    assert refused.exit_code == 2 and "--size" in refused.output
    assert runner.invoke(app, ["--hidden", "1"]).exit_code == 2
    # Every ner-export option of ServingOptions has its default from the dataclass, in one place.
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    export_help = subprocess.run([str(Path(sys.executable).parent / "ner-export"), "--help"], capture_output=True,
                                 text=True, env=environment, timeout=120, check=True).stdout
    assert "--queue-timeout" in export_help and "--text-batch-size" in export_help
    assert f"[default: {ServingOptions().text_batch_size}; x>=1]" in export_help

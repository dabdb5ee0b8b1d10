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

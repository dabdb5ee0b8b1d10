"""Triton's output: its error lines, and why a start failed in one line."""

from __future__ import annotations

import re

# Triton's error log lines: 'E1128 15:45:59.716243 27138 model_lifecycle.cc:642] "message"'.
ERROR_LINE = re.compile(r"E\d{4} \d\d:\d\d:\d\d")
_ERROR_MESSAGE = re.compile(r'E\d{4} [\d:.]+ +\d+ [^ ]+\] "?(?P<message>.*?)"?$')
# Said on every machine without a GPU: not a reason for anything.
_NOT_A_REASON = ("CudaDriverHelper has not been initialized",)


def start_failure(lines: list[str]) -> str | None:
    """Why Triton did not start, in one line, from its output: the first model that failed to load (Triton names
    the model, the backend's message the file), else the first error; without the Python traceback the Python
    backend appends."""
    messages = [match["message"].split("\\n")[0].strip() for match in map(_ERROR_MESSAGE.match, lines)
                if match and not match["message"].startswith(_NOT_A_REASON)]
    return next((m for m in messages if m.startswith("failed to load")), messages[0] if messages else None)

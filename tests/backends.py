"""NVIDIA's backends built from source (``backends/``) for the integration tests: built in the session if needed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "backends"


def ensure_built(name: str, find: Callable[[], Path | None]) -> Path:
    """The folder of NVIDIA's backend ``name`` (``find()``), built now with ``backends/build-<name>.sh`` if needed.

    In CI a failed build fails the tests, never skips them; elsewhere it skips them with the build's last line.
    """
    if find() is None:
        build_run = subprocess.run([str(SCRIPTS / f"build-{name}.sh")], capture_output=True, text=True,
                                   env={**os.environ, "PY": sys.executable})
        if build_run.returncode != 0 or find() is None:
            reason = (build_run.stderr.strip().splitlines() or ["no output"])[-1]
            if os.environ.get("CI"):
                pytest.fail(f"NVIDIA's {name} backend did not build: {reason}")
            pytest.skip(f"NVIDIA's {name} backend is not built ({reason})")
    return find()

"""The benchmarks' exports: a model exported once into a cache folder and reused while it is current."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from triton_ner.core import names


def cached_export(checkpoint: Path, output: Path, plan=None, variants: tuple[str, ...] = (),
                  log: Callable[[str], None] = print) -> Path:
    """``output`` holding ``checkpoint`` exported with ``plan`` (the export's default when None): reused when its
    manifest names that checkpoint, its models' code is this tree's and the model step has every config of
    ``variants``; exported again (``--force``) otherwise."""
    from triton_ner.export.repository import ExportPlan, build, code_is_current
    from triton_ner.export.source import Checkpoint

    manifest = output / names.MANIFEST
    if (manifest.exists() and json.loads(manifest.read_text())["source"] == str(checkpoint)
            and code_is_current(output)
            and all((output / names.MODEL / "configs" / f"{variant}.pbtxt").exists() for variant in variants)):
        return output
    build(Checkpoint(checkpoint, str(checkpoint)), output, plan or ExportPlan(), force=True, log=log)
    return output

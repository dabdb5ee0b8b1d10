"""The benchmarks' exports: a model exported once into a cache folder and reused while it is current."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from triton_ner.core import names

if TYPE_CHECKING:
    from triton_ner.export.assemble import ExportPlan

# Where the commands that serve the ceiling's fixture model by default (profile, stages) export it, and their option.
FIXTURE_REPOSITORY = Path(".cache/bench-repository-fixture")
RepositoryOption = Annotated[Path, typer.Option(help="An exported repository; by default the ceiling's fixture model "
                                                     "(exported into .cache when missing).")]


def cached_export(checkpoint: Path, output: Path, plan: ExportPlan | None = None, variants: tuple[str, ...] = (),
                  log: Callable[[str], None] = print) -> Path:
    """``output`` holding ``checkpoint`` exported with ``plan`` (the export's default when None): reused when its
    manifest names that checkpoint, its models' code is this tree's, the model step has every config of
    ``variants``, and each config of the plan that it did not refuse is the one this tree writes (limits and
    instances included) and names a model file that exists; exported again (``--force``) otherwise."""
    from triton_ner.export.assemble import ExportPlan, build, code_is_current
    from triton_ner.export.source import Checkpoint

    plan = plan or ExportPlan()
    manifest = output / names.MANIFEST
    if (manifest.exists() and json.loads(manifest.read_text())["source"] == str(checkpoint)
            and code_is_current(output)
            and all((output / names.MODEL / "configs" / f"{variant}.pbtxt").exists() for variant in variants)
            and _configs_current(output, plan)):
        return output
    build(Checkpoint(checkpoint, str(checkpoint)), output, plan, force=True, log=log)
    return output


def _configs_current(repository: Path, plan: ExportPlan) -> bool:
    """Whether each config of ``plan`` that the export did not refuse is, to the letter, the one this tree writes
    for it, and the model file it names exists."""
    from dataclasses import replace

    from triton_ner.export.configs import render, repository_configs

    manifest = json.loads((repository / names.MANIFEST).read_text())
    refused = {name for entry in manifest.get("refused", {}).values() for name in entry["config_names"]}
    kept = [v for v in plan.variants if v.config_name not in refused]
    options = replace(plan.options, num_labels=len(manifest["labels"]))
    written = repository_configs(kept, options)
    return (all((repository / path).is_file() and (repository / path).read_text() == render(config)
                for path, config in written.items())
            and all((repository / names.MODEL / "1" / v.model_file).is_file() for v in kept))

"""The benchmarks' exports: a model exported once into a cache folder and reused while it is current."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from triton_ner.core import names


def cached_export(checkpoint: Path, output: Path, plan=None, variants: tuple[str, ...] = (),
                  log: Callable[[str], None] = print) -> Path:
    """``output`` holding ``checkpoint`` exported with ``plan`` (the export's default when None): reused when its
    manifest names that checkpoint, its models' code is this tree's, the model step has every config of
    ``variants``, each config of the plan is the one this tree writes (limits and instances included) and names a
    model file that exists; exported again (``--force``) otherwise."""
    from triton_ner.export.assemble import ExportPlan, build, code_is_current
    from triton_ner.export.source import Checkpoint

    plan = plan or ExportPlan()
    manifest = output / names.MANIFEST
    if (manifest.exists() and json.loads(manifest.read_text())["source"] == str(checkpoint)
            and code_is_current(output)
            and all((output / names.MODEL / "configs" / f"{variant}.pbtxt").exists() for variant in variants)
            and _configs_current(output, plan) and _model_files_current(output, plan)):
        return output
    build(Checkpoint(checkpoint, str(checkpoint)), output, plan, force=True, log=log)
    return output


def _configs_current(repository: Path, plan) -> bool:
    """Whether each config the export kept for ``plan`` is, to the letter, the one this tree writes for it."""
    from dataclasses import replace

    from triton_ner.export.configs import render, repository_configs

    manifest = json.loads((repository / names.MANIFEST).read_text())
    kept = [v for v in plan.variants if (v.config_name or "config") in manifest["config_names"]]
    options = replace(plan.options, num_labels=len(manifest["labels"]))
    return all((repository / path).is_file() and (repository / path).read_text() == render(config)
               for path, config in repository_configs(kept, options).items())


def _model_files_current(repository: Path, plan) -> bool:
    """Whether every model-step config of ``plan`` is in ``repository``, names the file this version exports for
    it, and that file exists (an export made by an older version may name others)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_ner.export.configs import model_config_path

    for variant in plan.variants:
        path = repository / model_config_path(variant)
        if not path.exists():
            return False
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        named = config.default_model_filename or config.parameters["model_file"].string_value
        if named != variant.model_file or not (repository / names.MODEL / "1" / named).exists():
            return False
    return True

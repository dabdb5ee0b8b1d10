"""``python -m triton_ner_loadtest.stages``: the serving path's floor and what each stage of the text step adds to
it, under the ceiling's load (:mod:`triton_ner_loadtest.ceiling`).

Each stage is a copy of an exported repository whose text step stops after that stage of its work and answers
``[]`` for each text: ``answer`` reads nothing (the floor: gRPC, the ensemble and the Python backend's traffic,
nothing of ours), ``read`` decodes the texts and parameters, ``tokenize`` makes the windows, ``model`` calls the
model step with them; ``full`` is the repository as exported. The copies are served one after the other,
alternating (:mod:`triton_ner_loadtest.alternate`), and the table gives each one's CPU per text outside the model
step and what it adds to the stage before. The staged step imports this module: the steps' Python must have
``triton_ner_loadtest`` installed (the project's environment has).

    python -m triton_ner_loadtest.stages                     # the fixture model, 64 x 1 and 64 x 8, 5 runs
    python -m triton_ner_loadtest.stages --null-model        # every stage with the null model step
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from triton_ner import cli
from triton_ner.core import names
from triton_ner_loadtest.alternate import (
    OUTSIDE,
    LoadsOption,
    OutputOption,
    RunsOption,
    SecondsOption,
    Serving,
    parse_loads,
    run_servings,
)
from triton_ner_loadtest.ceiling import fixture_repository, with_null_model_step
from triton_ner_loadtest.exports import FIXTURE_REPOSITORY, RepositoryOption

app = cli.command()

STAGES = ("answer", "read", "tokenize", "model")  # where the staged text step stops, in the order of its work
FULL = "full"  # the exported repository itself


def staged_text_step(model_file: str, stage: str) -> type:
    """The text step's ``TritonPythonModel`` (the ``model.py`` of its version folder, copied beside ``model_file``
    as ``full_model.py``) with an ``execute`` that stops after ``stage`` and answers ``[]`` for each text."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    spec = importlib.util.spec_from_file_location("full_model", Path(model_file).with_name("full_model.py"))
    assert spec is not None and spec.loader is not None
    full = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(full)

    from triton_ner.core.text_step import logits_of_pool, windows_of_requests
    from triton_ner.python_backend import pb_utils  # inside the Python backend's stub only

    class Staged(full.TritonPythonModel):  # type: ignore[name-defined]  # the step's own module, loaded above
        def execute(self, requests: list[Any]) -> list[Any]:
            if stage == "answer":
                counts = [pb_utils.get_input_tensor_by_name(r, names.TEXT).shape()[-1] for r in requests]
                return [full._response([[]] * n) for n in counts]
            read = [self._read(r) for r in requests]
            errors = {i: r for i, r in enumerate(read) if isinstance(r, Exception)}
            if stage != "read":
                pool, _, errors = windows_of_requests(self.vocab, read, self.limits)
                if stage == "model" and pool.requests:
                    logits_of_pool(self.vocab, self.run, pool, self.limits, lanes=self.lanes.map)
            return [full.error_response(errors[i]) if i in errors else full._response([[]] * len(r[0]))
                    for i, r in enumerate(read)]

    return Staged


def write_stage(repository: Path, stage: str, folder: Path) -> Path:
    """A copy of ``repository`` in ``folder`` whose text step stops after ``stage``: its files hard-linked (``folder``
    on the same file system), the text step's ``model.py`` replaced."""
    copy = folder / f"stage-{stage}"
    shutil.copytree(repository, copy, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__"))
    version = copy / names.TEXT_STEP / "1"
    (version / "model.py").unlink()
    shutil.copyfile(repository / names.TEXT_STEP / "1" / "model.py", version / "full_model.py")
    (version / "model.py").write_text(
        f'"""The text step stopped after its {stage!r} stage, for measuring (triton_ner_loadtest.stages)."""\n\n'
        "from triton_ner_loadtest.stages import staged_text_step\n\n"
        f"TritonPythonModel = staged_text_step(__file__, {stage!r})\n")
    return copy


def markdown(found: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """One row per load and stage: the medians of texts/s and CPU ms per text, and what the stage adds outside the
    model step to the one before it."""
    lines = ["| clients x texts | stage | runs | texts/s | tritonserver | ner_text | outside the model step | "
             "added by the stage |", "|---" * 8 + "|"]
    loads = list(next(iter(found.values())))
    for load in loads:
        before = None
        for stage, runs in found.items():
            median = {k: statistics.median(r[k] for r in runs[load]) for k in runs[load][0]}
            added = "-" if before is None else f"{median[OUTSIDE] - before:+.3f}"
            lines.append(f"| {load} | {stage} | {len(runs[load])} | {median['texts/s']:.0f} | "
                         f"{median['tritonserver']:.3f} | {median[names.TEXT_STEP]:.3f} | {median[OUTSIDE]:.3f} | "
                         f"{added} |")
            before = median[OUTSIDE]
    return "\n".join(lines)


@app.command()
def main(
    repository: RepositoryOption = FIXTURE_REPOSITORY,
    loads: LoadsOption = "64x1,64x8",
    runs: RunsOption = 5,
    seconds: SecondsOption = 10.0,
    null_model: Annotated[bool, typer.Option(help="Serve every stage with the null model step (the model stage's "
                                                  "call without the model's work beside it).")] = False,
    output: OutputOption = None,
) -> None:
    """Serve the repository stopped after each stage of the text step, and in full, alternating; print each
    stage's CPU per text and what it adds."""
    try:
        points = parse_loads(loads)
    except ValueError as error:
        raise cli.fail("stages", str(error), cli.USAGE) from None
    if repository == FIXTURE_REPOSITORY:
        fixture_repository(repository, lambda m: cli.say("stages", f"export: {m}"))
    config = with_null_model_step(repository) if null_model else None  # written before the stages' copies
    python = Path(sys.executable)
    with tempfile.TemporaryDirectory(prefix="ner-stages-", dir=repository.parent) as folder:
        servings = [Serving(stage, python, write_stage(repository, stage, Path(folder)), config) for stage in STAGES]
        found = run_servings([*servings, Serving(FULL, python, repository, config)], points, runs, seconds)
    if output is not None:
        output.write_text(json.dumps(found, indent=1))
    print(markdown(found))


if __name__ == "__main__":
    app()

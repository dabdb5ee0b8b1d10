"""What the launcher checks before it starts Triton: the export is complete, and the backends it needs are there."""

from __future__ import annotations

import json
from pathlib import Path

from triton_ner.core import names
from triton_ner.core.errors import ServerError


def check_repository(repository: Path, config_name: str | None = None) -> None:
    """Refuse, naming the file, an export that is incomplete or damaged where Triton would not say which file:
    the manifest missing or not JSON, a file it lists missing, a JSON file (the tokenizer's) that does not parse,
    no ``configs/<config_name>.pbtxt``. A damaged model or config file is left to Triton, whose error names it.
    An empty volume, which Triton would serve as a server without models, is refused the same way."""
    manifest = repository / names.MANIFEST
    if not manifest.exists():
        raise ServerError(f"{repository} has no exported model ({names.MANIFEST} is missing): run the export first")
    try:
        exported = json.loads(manifest.read_text())
        artifacts = exported["artifacts"]
    except (ValueError, KeyError, TypeError) as error:
        raise ServerError(f"{manifest} is damaged ({type(error).__name__}: {error}): run the export again") from None
    for name in artifacts:
        path = repository / name
        if not path.is_file():
            raise ServerError(f"{path} is missing (listed in {names.MANIFEST}): run the export again")
        if path.suffix == ".json":
            try:
                json.loads(path.read_bytes())
            except ValueError as error:
                raise ServerError(f"{path} is damaged (not JSON: {error}): run the export again") from None
    if config_name and not list(repository.glob(f"*/configs/{config_name}.pbtxt")):
        written = ", ".join(exported.get("config_names", [])) or "none"
        raise ServerError(f"no model in {repository} has configs/{config_name}.pbtxt (the export wrote: {written}): "
                          "export that variant first")


def backends_needed(model_repository: Path, config_name: str | None = None) -> dict[str, str]:
    """The backend each model of the repository asks for, by ``<model>/<config file>``.

    The file is the one Triton loads: ``configs/<config_name>.pbtxt`` when the model has it, else
    ``config.pbtxt``. A file that does not parse is left for Triton to report.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    found = {}
    for model in sorted(p for p in model_repository.iterdir() if p.is_dir()):
        path = model / "configs" / f"{config_name}.pbtxt" if config_name else None
        if path is None or not path.exists():
            path = model / "config.pbtxt"
        if not path.exists():
            continue
        config = mc.ModelConfig()
        try:
            text_format.Parse(path.read_text(), config)
        except (text_format.ParseError, UnicodeDecodeError):
            continue
        backend = config.backend or {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch"}.get(
            config.platform, "")
        if backend:
            found[str(path.relative_to(model_repository))] = backend
    return found

"""Assemble a complete Triton model repository from a checkpoint, in a temporary folder, then move it in place."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from export import configs
from export.onnx_export import OPSET, TOLERANCE, export_onnx, load_model, prove
from export.source import Checkpoint, ExportError
from ner import names

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The committed repository holds the models' code; every export copies it from here.
TEMPLATE = PROJECT_ROOT / "model_repository"
CODE_FILES = ("model.py", ".gitkeep")
LIBRARIES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "tritonclient", "nvidia-pytriton")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_code(repository: Path) -> None:
    for model in (names.ENSEMBLE, names.TOKENIZER, names.MODEL, names.AGGREGATE):
        (repository / model / "1").mkdir(parents=True, exist_ok=True)
        for name in CODE_FILES:
            if (TEMPLATE / model / "1" / name).exists():
                shutil.copy2(TEMPLATE / model / "1" / name, repository / model / "1" / name)


def _save_tokenizer(tokenizer, model, folder: Path) -> None:
    """The tokenizer files and the checkpoint's config.json (labels), all the text steps read."""
    folder.mkdir(parents=True)
    tokenizer.save_pretrained(folder)
    model.config.to_json_file(folder / "config.json")


def _existing_export(output: Path) -> bool:
    return (output / names.MANIFEST).exists() or (output / names.MODEL / "1" / names.ONNX_FILE).exists()


def build(checkpoint: Checkpoint, output: Path, options: configs.ServingOptions = configs.ServingOptions(),
          force: bool = False, log=print) -> dict:
    """Export ``checkpoint`` into the repository ``output``; return the manifest.

    The repository is written next to ``output`` and moved in place only when the ONNX proof passed, so a
    failed export leaves nothing half-written. An existing export is replaced only with ``force``.
    """
    from transformers import AutoTokenizer

    output = output.resolve()
    if _existing_export(output) and not force:
        raise ExportError(f"{output} already holds an exported model: pass --force to replace it")
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=parent))
    except OSError as error:
        raise ExportError(f"cannot write to {parent}: {error.strerror}") from None
    try:
        started = time.perf_counter()
        log(f"loading {checkpoint.source}")
        model = load_model(checkpoint.path)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
        if not tokenizer.is_fast:
            raise ExportError(f"{checkpoint.path}: a fast tokenizer (tokenizer.json) is required for offsets")
        _copy_code(work)
        configs.write_configs(work, options)
        _save_tokenizer(tokenizer, model, work / names.TOKENIZER / "1" / names.TOKENIZER_DIR)
        onnx_path = work / names.MODEL / "1" / names.ONNX_FILE
        log("exporting ONNX")
        export_onnx(model, tokenizer, onnx_path)
        log("comparing ONNX Runtime with PyTorch")
        proof = prove(model, tokenizer, onnx_path)
        log(f"max |Δ logits| = {proof.max_abs_diff:.2e} over {proof.cases} batches (tolerance {TOLERANCE:g})")
        if not proof.ok:
            raise ExportError(f"ONNX logits differ from PyTorch by {proof.max_abs_diff:.2e} > {TOLERANCE:g}")
        manifest = {
            "source": checkpoint.source,
            "revision": checkpoint.revision,
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "onnx_opset": OPSET,
            "precision": "fp32",
            "proof": {"max_abs_logit_diff": proof.max_abs_diff, "tolerance": TOLERANCE, "batches": proof.cases},
            "libraries": {lib: metadata.version(lib) for lib in LIBRARIES},
            "python": platform.python_version(),
            "artifacts": {str(p.relative_to(work)): _sha256(p)
                          for p in sorted(work.rglob("*")) if p.is_file()},
            "export_seconds": round(time.perf_counter() - started, 1),
        }
        (work / names.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(work, output)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _replace(new: Path, output: Path) -> None:
    """Move ``new`` to ``output``, swapping out any previous folder (two renames, no partial state)."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}-old-{os.getpid()}")
        output.rename(old)
    new.rename(output)
    if old:
        shutil.rmtree(old, ignore_errors=True)

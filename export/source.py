"""Where a checkpoint comes from: a local folder, the built-in fixture, or the Hugging Face Hub."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

FIXTURE = "fixture"
BENCHMARK = "benchmark"
HUB_TIMEOUT_S = 5.0


class ExportError(RuntimeError):
    """A user-facing export failure; the message is one line."""


class HubUnreachable(ExportError):
    """The Hub could not be reached and the model is not in the local cache."""


class ProofFailed(ExportError):
    """An artifact failed its proof against its reference: the message names the artifact, the figure and the
    bound."""

    def __init__(self, artifact: str, reference: str, figure: str, bound: str, note: str = ""):
        self.artifact, self.reference, self.figure, self.bound = artifact, reference, figure, bound
        super().__init__(f"{artifact}: {figure} against {reference} (bound: {bound}){note}")


class LogitsDiffer(ProofFailed):
    """A model file's logits differ from PyTorch's beyond the tolerance."""


class EntitiesDisagree(ProofFailed):
    """A lower-precision file finds too few of the entities of the FP32 file of its format."""


class UnsafeGraph(ExportError):
    """A traced graph holds constants that would break it elsewhere (a device, a value half precision cannot
    hold)."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder on disk and where it came from (for the manifest)."""

    path: Path
    source: str
    revision: str | None = None


def _hub_download(model_id: str, revision: str | None) -> Checkpoint:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = ["*.json", "*.safetensors", "*.bin", "vocab.txt", "*.model"]
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(model_id, revision=revision, timeout=HUB_TIMEOUT_S)
        path = snapshot_download(model_id, revision=info.sha, allow_patterns=patterns, etag_timeout=HUB_TIMEOUT_S)
        return Checkpoint(Path(path), model_id, info.sha)
    except HFValidationError:
        raise ExportError(f"{model_id!r} is neither a local folder nor a valid Hub model id") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ExportError(f"{model_id!r} is neither a local folder nor a model on the Hugging Face Hub") from None
    except RevisionNotFoundError:
        raise ExportError(f"{model_id!r} has no revision {revision!r} on the Hugging Face Hub") from None
    except Exception as error:  # noqa: BLE001 - any network failure means "use the local cache if it has it"
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
    try:
        path = snapshot_download(model_id, revision=revision, allow_patterns=patterns, local_files_only=True)
        return Checkpoint(Path(path), model_id, revision)
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise HubUnreachable(f"cannot reach the Hugging Face Hub ({reason}) and {model_id!r} is not in the "
                             f"local cache: pass a local folder or --model {FIXTURE}") from None


def resolve(model: str, revision: str | None = None, fallback_to_fixture: bool = False) -> Checkpoint:
    """A local checkpoint for ``model``, checked to be token classification.

    ``model`` is a folder, a Hub id, ``fixture`` (the tiny trained test model) or ``benchmark`` (full-size
    DistilBERT with random weights).

    With ``fallback_to_fixture``, an unreachable Hub gives one warning line and the fixture model.
    """
    if model == FIXTURE:
        from triton_ner.export.fixture import fixture_model

        checkpoint = Checkpoint(fixture_model(), FIXTURE)
    elif model == BENCHMARK:
        from triton_ner.export.fixture import benchmark_model

        checkpoint = Checkpoint(benchmark_model(), BENCHMARK)
    elif Path(model).exists():
        checkpoint = Checkpoint(Path(model).resolve(), str(Path(model).resolve()))
    else:
        try:
            checkpoint = _hub_download(model, revision)
        except HubUnreachable:
            if not fallback_to_fixture:
                raise
            print(f"warning: the Hugging Face Hub is unreachable and {model!r} is not cached: "
                  f"using the built-in fixture model", file=sys.stderr)
            return resolve(FIXTURE)
    check(checkpoint.path)
    return checkpoint


def check(path: Path) -> None:
    """Refuse folders that are not a token-classification checkpoint with weights and a fast tokenizer."""
    if not path.is_dir():
        raise ExportError(f"{path} is not a folder")
    config_file = path / "config.json"
    if not config_file.exists():
        raise ExportError(f"{path} has no config.json: not a Hugging Face checkpoint")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ExportError(f"{path} has no weights (*.safetensors or *.bin)")
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ExportError(f"{path} is not a token-classification checkpoint (architectures: "
                          f"{', '.join(architectures) or 'none'})")
    if not (path / "tokenizer.json").exists() and not (path / "vocab.txt").exists():
        raise ExportError(f"{path} has no tokenizer files (tokenizer.json or vocab.txt)")

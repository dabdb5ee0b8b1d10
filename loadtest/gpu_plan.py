"""What a gpu-check run does (the full run on a GPU, the CPU dry run), the runners it measures, and the traced
model its steps share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SKIPPED_NO_TRITON = ("skipped: no serving pack and no local tritonserver (make gpu-check-pack where the "
                     "nvidia-pytriton wheel is installed)")


SKIPPED_BUDGET = "skipped: time budget spent"


GRID_SHARE = 0.7  # the model-alone grid stops at this share of the budget, leaving the rest to the served step


@dataclass(frozen=True)
class Runner:
    """One way of running the traced model alone: its precision, the attention traced into the file (``sdpa`` or
    ``eager``) and whether calls replay CUDA graphs of fixed shapes (the cuda variant's runner) or launch each
    kernel."""

    precision: str
    attention: str = "sdpa"
    graphs: bool = True

    @property
    def name(self) -> str:
        return f"{self.precision} {self.attention}{' graphs' if self.graphs else ''}"


SERVED_RUNNER = Runner("fp16")  # what configs/cuda.pbtxt runs


# The served runner first, then each means taken away in turn (graphs, fused attention), then the other precisions.
GPU_RUNNERS = (SERVED_RUNNER, Runner("fp16", graphs=False), Runner("fp16", "eager", graphs=False),
               Runner("fp16", "eager"), Runner("bf16"), Runner("fp32"))


@dataclass(frozen=True)
class Plan:
    """What one run does: full size on a GPU, or the CPU dry run."""

    dry_run: bool
    device: str
    model: str  # "benchmark" (full size, random weights) or "fixture" (tiny, trained)
    batches: tuple[int, ...]
    lengths: tuple[int, ...]
    warmup: int
    repeats: int
    concurrency: tuple[int, ...]
    texts_per_request: tuple[int, ...]
    served_seconds: float  # of load per served cell
    runners: tuple[Runner, ...]  # measured alone
    served: Runner  # what the served step runs


FULL = Plan(False, "cuda", "benchmark", (1, 8, 32, 128, 256), (16, 64, 128, 512), warmup=3, repeats=10,
            concurrency=(1, 16, 64, 256), texts_per_request=(1, 8), served_seconds=5.0, runners=GPU_RUNNERS,
            served=SERVED_RUNNER)


DRY_RUN = Plan(True, "cpu", "fixture", (1, 8), (16, 64), warmup=2, repeats=3, concurrency=(1, 16),
               texts_per_request=(1, 8), served_seconds=1.5,
               runners=(Runner("fp32", graphs=False), Runner("fp32"), Runner("fp32", "eager", graphs=False)),
               served=Runner("fp32", graphs=False))  # config.pbtxt on CPU


SERVED_TEXTS = 512  # short sentences, sent in turn


def one_line(error: BaseException) -> str:
    message = str(error).strip()
    return f"{type(error).__name__}: {message.splitlines()[0]}" if message else type(error).__name__


@dataclass
class Traced:
    """Step 1's result: the checkpoint, its eager PyTorch model and tokenizer, and the traced files: the export's
    (fused attention) and one with transformers' eager attention, measured beside it."""

    checkpoint: Path
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    torchscript: Path
    torchscript_eager: Path

    def file(self, runner: Runner) -> Path:
        return self.torchscript if runner.attention == "sdpa" else self.torchscript_eager


def release(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()

"""Model step in the Python backend: the exported model (ONNX Runtime or TorchScript) on the dynamic batcher's batch.

Each request brings ``[windows, tokens]`` of its own length. All rows are pooled, sorted by length and run
in groups of at most ``max_tokens_per_run`` padded tokens; each request gets back its own rows, or its own
error. A request cancelled or past its timeout stops between runs. On ``KIND_GPU`` the TorchScript model runs
on the instance's GPU, in the configured precision, replaying a CUDA graph per padded shape when
``max_rows_per_graph`` is above 0. With ``model_file`` ``null`` it runs no model (the null runner, for measuring
the serving path alone).
"""

import time

import numpy as np

from triton_ner.core import names
from triton_ner.core.batching import PAD_LENGTHS
from triton_ner.core.cuda_graphs import GraphRunner, served_shapes
from triton_ner.core.model_runs import check_rows, run_requests
from triton_ner.core.runners import load_runner, null_runner, warm_up
from triton_ner.core.settings import ModelStepSettings, from_parameters
from triton_ner.core.vocabulary import checkpoint_config
from triton_ner.python_backend import (
    Args,
    Request,
    Response,
    StopCheck,
    config_parameters,
    error_response,
    input_array,
    instance_device,
    instance_threads,
    log_info,
    repository_path,
    response,
)


class TritonPythonModel:
    def initialize(self, args: Args) -> None:
        settings = from_parameters(ModelStepSettings, config_parameters(args))
        path = f"{args['model_repository']}/{args['model_version']}/{settings.model_file}"
        threads = instance_threads(args, settings.intra_op_threads, spinning=path.endswith(".pt"))
        self.max_tokens, self.max_length = settings.max_tokens_per_run, settings.max_sequence_length
        lengths = tuple(n for n in PAD_LENGTHS if n <= self.max_length)
        rows = settings.max_rows_per_graph
        shapes = served_shapes(rows, self.max_tokens, self.max_length) if rows else None
        started = time.monotonic()
        checkpoint = checkpoint_config(repository_path(args, settings.tokenizer_dir))
        if settings.model_file == names.NULL_MODEL_FILE:  # measuring the serving path alone
            self.run = null_runner(len(checkpoint["id2label"]))
        else:
            self.run = load_runner(path, threads, instance_device(args), settings.precision, shapes)
        if shapes is not None and isinstance(self.run, GraphRunner):
            log_info(f"{args['model_name']}: {len(shapes.all())} fixed shapes (up to {rows} rows of "
                     f"{lengths[0]}-{lengths[-1]} tokens) ready in {time.monotonic() - started:.1f} s; "
                     f"{self.run.memory_bytes() / 2**30:.2f} GiB of {instance_device(args)} memory held")
        self.vocab_size = checkpoint["vocab_size"]
        # Every length the text step pads to, before the model reports ready: no first request pays for a shape.
        warm_up(self.run, lengths, token=min(100, self.vocab_size - 1))

    def _inputs(self, request: Request) -> tuple[np.ndarray, np.ndarray] | Exception:
        try:
            ids, mask = input_array(request, names.INPUT_IDS), input_array(request, names.ATTENTION_MASK)
            check_rows(ids, mask, self.max_length, self.vocab_size)
            return ids, mask
        except Exception as error:  # noqa: BLE001 - refused alone, the rest of the batch runs
            return error

    def execute(self, requests: list[Request]) -> list[Response]:
        started = time.monotonic()
        results = run_requests(self.run, [self._inputs(r) for r in requests], self.max_tokens,
                               StopCheck(requests, started))
        return [error_response(r) if isinstance(r, Exception) else response(**{names.LOGITS: r}) for r in results]

"""Glue shared by the Python-backend models of the repository: configuration parameters, tensors in and out,
error responses, stop checks and calls to another model.

Imported only inside Triton's Python backend, where ``triton_python_backend_utils`` exists.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_ner.core.errors import Code, InvalidInput, ModelStepError, ServingError, Stopped
from triton_ner.core.runners import Runner

# The Python backend's objects (triton_python_backend_utils carries no type information): a model's ``args``,
# a request, a response.
Args = dict[str, str]
Request = Any
Response = Any


def config_parameters(args: Args) -> dict[str, str]:
    """The ``parameters`` of the model's configuration."""
    return {k: v["string_value"] for k, v in json.loads(args["model_config"]).get("parameters", {}).items()}


def log_info(message: str) -> None:
    """A line in the server's log."""
    pb_utils.Logger.log_info(message)


def repository_path(args: Args, relative: str) -> Path:
    """A path given relative to the model repository's root."""
    return Path(args["model_repository"]).parent / relative


def error_response(error: Exception) -> Response:
    """The response for a failed request: a :class:`~triton_ner.core.errors.ServingError` with its own code and
    message; any other exception is a bug, ``INTERNAL``, with its traceback in the server's log."""
    if not isinstance(error, ServingError):
        traceback.print_exception(error)
        error = ServingError(f"{type(error).__name__}: {error}")
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), getattr(pb_utils.TritonError,
                                                                                     error.code.value)))


def _code(error: Any) -> Code:
    """The :class:`~triton_ner.core.errors.Code` of a ``TritonError``."""
    number = error.code()
    return next((code for code in Code if getattr(pb_utils.TritonError, code.value) == number), Code.INTERNAL)


class StopCheck:
    """Why a request of one ``execute`` must stop now, or None: its client cancelled it, or its timeout has passed.

    ``check(i)`` is asked before each model call that holds windows of ``requests[i]``. The timeout is Triton's
    request timeout (``timeout`` of the request, in microseconds), which an ensemble passes on to its steps; it is
    counted here from ``started`` (``time.monotonic()`` when the step took the request), while Triton's queue
    policy refuses a request that waited longer than it in a queue. Cancellation is asked from the request's second
    call on: Triton's queue drops a request cancelled while it waited, and each question is a round trip to the
    server (the Python backend's ``is_cancelled``), which asked before every call costs a noticeable share of the
    text step's CPU time on short texts. Triton 2.51 does not pass a cancelled ensemble request on to the steps; a
    direct or BLS call is.
    """

    def __init__(self, requests: list[Request], started: float):
        self.requests = requests
        self.started = started
        self.asked: set[int] = set()

    def __call__(self, i: int) -> Stopped | None:
        request = self.requests[i]
        if i in self.asked and request.is_cancelled():
            return Stopped("the request was cancelled before all its windows ran")
        self.asked.add(i)
        timeout = request.timeout()
        if timeout and time.monotonic() - self.started > timeout / 1e6:
            return Stopped(f"the request's timeout of {timeout / 1e6:g} s passed before all its windows ran")
        return None


def model_runner(model_name: str, inputs: tuple[str, ...], output: str) -> Runner:
    """A runner (``(input_ids, attention_mask) -> logits``) that calls another model of the server (BLS)."""

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = pb_utils.InferenceRequest(
            model_name=model_name, requested_output_names=[output],
            inputs=[pb_utils.Tensor(inputs[0], input_ids), pb_utils.Tensor(inputs[1], attention_mask)])
        answer = _exec(request)
        if answer.has_error():
            raise ModelStepError(answer.error().message(), _code(answer.error()))
        return pb_utils.get_output_tensor_by_name(answer, output).as_numpy()

    return run


def _exec(request: Any) -> Any:
    """A BLS call's answer: the request sent, and its answer waited for (a profile tells this wait apart)."""
    return request.exec()


def instance_threads(args: Args, configured: int, spinning: bool = True) -> int:
    """Intra-op threads of a model instance: ``configured``; with 0, every core this process may use for a runtime
    whose threads do not spin (ONNX Runtime, OpenVINO), else those cores shared evenly among the model's CPU instances
    (two instances on two cores: one thread each, so that neither spins on the other's core while a short request
    runs beside a long one)."""
    if configured:
        return configured
    cores = len(os.sched_getaffinity(0))
    if not spinning:
        return cores
    groups = json.loads(args["model_config"]).get("instance_group", [])
    instances = sum(g.get("count", 1) for g in groups if g.get("kind", "KIND_CPU") == "KIND_CPU") or 1
    return max(1, cores // instances)


def instance_device(args: Args) -> str:
    """``cuda:N`` for an instance Triton placed on GPU N (``KIND_GPU``), else ``cpu``."""
    return f"cuda:{args['model_instance_device_id']}" if args.get("model_instance_kind") == "GPU" else "cpu"


def input_array(request: Request, name: str) -> np.ndarray:
    """The named input of ``request`` as a numpy array."""
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


def input_texts(request: Request, name: str, max_bytes: int | None = None) -> list[str]:
    """The named BYTES input as Python strings; a text that is not UTF-8, or larger than ``max_bytes``, is invalid."""
    texts = []
    for i, value in enumerate(input_array(request, name).reshape(-1)):
        if max_bytes is not None and len(value) > max_bytes:
            raise InvalidInput(f"{name}[{i}] is {len(value):,} bytes; the most per text is {max_bytes:,} bytes")
        try:
            texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        except UnicodeDecodeError as error:
            raise InvalidInput(f"{name}[{i}] is not valid UTF-8 ({error.reason} at byte {error.start})") from None
    return texts


def request_parameters(request: Request) -> dict[str, Any]:
    """The request's parameters as a dict."""
    return json.loads(request.parameters() or "{}")


def response(**tensors: np.ndarray) -> Response:
    """An inference response with the given output tensors."""
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in tensors.items()])

"""Text step: the texts of every queued request to entities, the model step called with their windows.

One ``execute`` takes every request the scheduler has queued: their texts are tokenized in one call, their windows
call the model step (business logic scripting) in length groups, every length at once
(:mod:`triton_ner.core.length_groups`), and the logits of all requests are aggregated together
(:mod:`triton_ner.core.text_step`), one JSON document per text. Each request
keeps its own options, limits and error; one cancelled or past its timeout stops between model calls.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from triton_ner.core import names
from triton_ner.core.aggregation import to_json
from triton_ner.core.parameters import RequestOptions, parse
from triton_ner.core.settings import TextStepSettings, from_parameters
from triton_ner.core.text_step import Entities, entities_of_requests, warm_up_logits
from triton_ner.core.vocabulary import load_vocabulary
from triton_ner.python_backend import (
    Args,
    Request,
    Response,
    StopCheck,
    config_parameters,
    error_response,
    input_texts,
    model_runner,
    repository_path,
    request_parameters,
    response,
)


class TritonPythonModel:
    def initialize(self, args: Args) -> None:
        # One tokenizer thread per instance: Triton scales this step by instances, and the Rust tokenizer's thread
        # pool only adds hand-offs on a busy host.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        settings = from_parameters(TextStepSettings, config_parameters(args))
        self.vocab = load_vocabulary(repository_path(args, settings.tokenizer_dir))
        self.max_text_bytes = settings.max_text_bytes
        self.run = model_runner(settings.model_name, settings.model_inputs, settings.model_output)
        self.limits = settings.limits
        self.lanes = ThreadPoolExecutor(len(self.limits.pad_lengths), thread_name_prefix="model-call")
        # Tokenization, aggregation and the entities' JSON once before ready (the model step is not called: it may
        # not be loaded yet), so that the first request pays for none of their first calls.
        (warm,) = entities_of_requests(self.vocab, warm_up_logits(len(self.vocab.id2label)),
                                       [(["Angela Merkel visited Paris."], parse({}))], self.limits)
        if isinstance(warm, Exception):
            raise warm
        to_json(warm[0])

    def _read(self, request: Request) -> tuple[list[str], RequestOptions] | Exception:
        try:
            return input_texts(request, names.TEXT, self.max_text_bytes), parse(request_parameters(request))
        except Exception as error:  # noqa: BLE001 - refused alone, the rest of the batch goes on
            return error

    def execute(self, requests: list[Request]) -> list[Response]:
        started = time.monotonic()
        found = entities_of_requests(self.vocab, self.run, [self._read(r) for r in requests], self.limits,
                                     StopCheck(requests, started), self.lanes.map)
        return [error_response(f) if isinstance(f, Exception) else _response(f) for f in found]

    def finalize(self) -> None:
        self.lanes.shutdown(wait=False)


def _response(entities: Entities) -> Response:
    """One JSON document per text, with the batch dimension of one request."""
    return response(**{names.ENTITIES: np.array([[to_json(e) for e in entities]], dtype=np.object_)})

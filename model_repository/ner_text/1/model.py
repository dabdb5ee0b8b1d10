"""Tokenizer step: the texts of every queued request to windows, run through the model step, on to aggregation.

One ``execute`` takes every request the scheduler has queued: their texts are tokenized in one call, and their
windows are pooled into groups of one padded length each (16 to 512 tokens), which call the model step (business
logic scripting) all at once, one group per length at a time: NVIDIA's backends, which batch equal shapes only,
then batch the groups of many requests, and no short window is padded to a long neighbour's length. Each request
keeps its own options, limits and error; one cancelled or past its timeout stops between model calls.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from triton_ner.core import names
from triton_ner.backend import (config_parameter, error_response, input_texts, model_runner, repository_path,
                                request_parameters, response, stop_reason)
from triton_ner.core.batching import run_requests_in_buckets
from triton_ner.core.parameters import parse
from triton_ner.core.tokenization import Batch, load_vocabulary, prepare_requests


class TritonPythonModel:
    def initialize(self, args):
        # One tokenizer thread per instance: Triton scales this step by instances, and the Rust tokenizer's thread
        # pool only adds hand-offs on a busy host (a batch of 11 short texts encodes 1.5x faster without it).
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.tokenizer = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir"))).tokenizer
        self.max_windows = int(config_parameter(args, "max_windows"))
        self.max_text_bytes = int(config_parameter(args, "max_text_bytes"))
        self.max_tokens = int(config_parameter(args, "max_tokens_per_request"))
        self.run = model_runner(config_parameter(args, "model_name"),
                                tuple(config_parameter(args, "model_inputs").split(",")),
                                config_parameter(args, "model_output"))
        self.buckets = tuple(int(n) for n in config_parameter(args, "pad_to_lengths").split(","))
        self.max_rows = int(config_parameter(args, "max_rows_per_call"))
        self.max_call_tokens = int(config_parameter(args, "max_tokens_per_call"))
        self.lanes = ThreadPoolExecutor(len(self.buckets), thread_name_prefix="model-call")

    def _read(self, request):
        try:
            return input_texts(request, names.TEXT, self.max_text_bytes), parse(request_parameters(request))
        except Exception as error:  # noqa: BLE001: refused alone, the rest of the batch goes on
            return error

    def execute(self, requests):
        started = time.monotonic()
        answers = [self._read(r) for r in requests]
        valid = [i for i, answer in enumerate(answers) if not isinstance(answer, Exception)]
        for i, batch in zip(valid, prepare_requests(self.tokenizer, [answers[i] for i in valid], self.max_windows,
                                                    self.max_tokens)):
            answers[i] = batch
        tokenized = [i for i, answer in enumerate(answers) if isinstance(answer, Batch)]
        logits = run_requests_in_buckets(
            self.run, [(answers[i].input_ids, answers[i].attention_mask) for i in tokenized], self.buckets,
            self.max_rows, self.tokenizer.pad_token_id, lambda k: stop_reason(requests[tokenized[k]], started),
            self.max_call_tokens, self.lanes.map) if tokenized else []
        for i, result in zip(tokenized, logits):
            answers[i] = result if isinstance(result, Exception) else _response(answers[i], result)
        return [error_response(answer) if isinstance(answer, Exception) else answer for answer in answers]

    def finalize(self):
        self.lanes.shutdown(wait=False)


def _response(batch: Batch, logits: np.ndarray):
    """The tensors aggregation needs, each with the batch dimension of one request."""
    return response(**{name: np.expand_dims(value, 0) for name, value in (
        (names.INPUT_IDS, batch.input_ids), (names.OFFSETS, batch.offsets),
        (names.SPECIAL_TOKENS_MASK, batch.special_tokens_mask), (names.LOGITS, logits),
        (names.TEXT_INDEX, batch.text_index))})

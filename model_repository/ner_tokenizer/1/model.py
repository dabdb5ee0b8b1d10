"""Tokenizer step: TEXT (several texts) to windows of token ids, character offsets and the window→text map.

In the variants of NVIDIA's backends (``model_name`` set) it also calls the model step itself, with the windows
in groups of one padded length each, and passes the logits on.
"""

import time

from triton_ner.core import names
from triton_ner.backend import (config_parameter, config_parameters, for_each_request, input_texts, model_runner,
                                repository_path, request_parameters, response, stop_reason)
from triton_ner.core.batching import run_in_buckets
from triton_ner.core.parameters import parse
from triton_ner.core.tokenization import load_vocabulary, prepare


class TritonPythonModel:
    def initialize(self, args):
        self.tokenizer = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir"))).tokenizer
        self.max_windows = int(config_parameter(args, "max_windows"))
        self.max_text_bytes = int(config_parameter(args, "max_text_bytes"))
        self.max_tokens = int(config_parameter(args, "max_tokens_per_request"))
        parameters = config_parameters(args)
        self.run = None
        if "model_name" in parameters:
            self.run = model_runner(parameters["model_name"], tuple(parameters["model_inputs"].split(",")),
                                    parameters["model_output"])
            self.buckets = tuple(int(n) for n in parameters["pad_to_lengths"].split(","))
            self.max_rows = int(parameters["max_rows_per_call"])

    def execute(self, requests):
        return for_each_request(requests, self._tokenize)

    def _tokenize(self, request):
        started = time.monotonic()
        options = parse(request_parameters(request))
        texts = input_texts(request, names.TEXT, self.max_text_bytes)
        batch = prepare(self.tokenizer, texts, options, self.max_windows, self.max_tokens)
        tensors = {
            names.INPUT_IDS: batch.input_ids,
            names.OFFSETS: batch.offsets,
            names.SPECIAL_TOKENS_MASK: batch.special_tokens_mask,
            names.TEXT_INDEX: batch.text_index,
        }
        if self.run is None:
            tensors[names.ATTENTION_MASK] = batch.attention_mask
        else:
            tensors[names.LOGITS] = run_in_buckets(self.run, batch.input_ids, batch.attention_mask, self.buckets,
                                                   self.max_rows, self.tokenizer.pad_token_id,
                                                   lambda: stop_reason(request, started))
        return response(**tensors)

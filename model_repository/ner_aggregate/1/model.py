"""Aggregation step: logits of every window to the transformers pipeline's entities, one JSON per text."""

import json

import numpy as np

from triton_ner.core import names
from triton_ner.core.aggregation import aggregate_texts, to_python
from triton_ner.backend import (config_parameter, for_each_request, input_array, input_texts, repository_path,
                                request_parameters, response)
from triton_ner.core.parameters import parse
from triton_ner.core.tokenization import load_vocabulary


class TritonPythonModel:
    def initialize(self, args):
        self.vocab = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir")))

    def execute(self, requests):
        return for_each_request(requests, self._aggregate)

    def _aggregate(self, request):
        options = parse(request_parameters(request))
        results = aggregate_texts(
            input_texts(request, names.TEXT),
            *(input_array(request, n) for n in (names.INPUT_IDS, names.OFFSETS, names.SPECIAL_TOKENS_MASK,
                                                names.LOGITS, names.TEXT_INDEX)),
            vocab=self.vocab, strategy=options.aggregation_strategy, ignore_labels=options.ignore_labels)
        documents = [json.dumps(to_python(entities), ensure_ascii=False).encode() for entities in results]
        return response(**{names.ENTITIES: np.array(documents, dtype=np.object_)})

"""Tokenizer step: TEXT (several texts) to padded token tensors, character offsets and special-token mask."""

from ner import names
from ner.backend import (config_parameter, for_each_request, input_texts, repository_path, request_parameters,
                         response)
from ner.parameters import InvalidInput, parse
from ner.tokenization import encode, load_vocabulary


class TritonPythonModel:
    def initialize(self, args):
        self.tokenizer = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir"))).tokenizer
        self.max_texts = int(config_parameter(args, "max_texts"))

    def execute(self, requests):
        return for_each_request(requests, self._tokenize)

    def _tokenize(self, request):
        parse(request_parameters(request))  # refuse bad options before any work; the aggregation applies them
        texts = input_texts(request, names.TEXT)
        if not texts:
            raise InvalidInput(f"{names.TEXT} is empty: send at least one text")
        if len(texts) > self.max_texts:
            raise InvalidInput(f"{names.TEXT} has {len(texts)} texts; the most per request is {self.max_texts}")
        batch = encode(self.tokenizer, texts)
        return response(**{
            names.INPUT_IDS: batch.input_ids,
            names.ATTENTION_MASK: batch.attention_mask,
            names.OFFSETS: batch.offsets,
            names.SPECIAL_TOKENS_MASK: batch.special_tokens_mask,
        })

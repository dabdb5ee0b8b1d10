"""Tokenizer step: TEXT (several texts) to windows of token ids, character offsets and the window→text map."""

from ner import names
from ner.backend import (config_parameter, for_each_request, input_texts, repository_path, request_parameters,
                         response)
from ner.parameters import parse
from ner.tokenization import load_vocabulary, pad_to_lengths, prepare


class TritonPythonModel:
    def initialize(self, args):
        self.tokenizer = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir"))).tokenizer
        self.max_windows = int(config_parameter(args, "max_windows"))
        self.max_text_bytes = int(config_parameter(args, "max_text_bytes"))
        self.pad_lengths = tuple(int(n) for n in config_parameter(args, "pad_to_lengths").split(",") if n)

    def execute(self, requests):
        return for_each_request(requests, self._tokenize)

    def _tokenize(self, request):
        options = parse(request_parameters(request))
        texts = input_texts(request, names.TEXT, self.max_text_bytes)
        batch = prepare(self.tokenizer, texts, options, self.max_windows)
        if self.pad_lengths:
            batch = pad_to_lengths(batch, self.pad_lengths, self.tokenizer.pad_token_id)
        return response(**{
            names.INPUT_IDS: batch.input_ids,
            names.ATTENTION_MASK: batch.attention_mask,
            names.OFFSETS: batch.offsets,
            names.SPECIAL_TOKENS_MASK: batch.special_tokens_mask,
            names.TEXT_INDEX: batch.text_index,
        })

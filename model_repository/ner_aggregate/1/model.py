"""Aggregation step: logits of every window to the transformers pipeline's entities, one JSON per text.

One ``execute`` takes every request the scheduler has queued: one softmax over the rows of all of them, then
each request's pipeline logic with its own options; one bad request fails alone.
"""

import numpy as np

from triton_ner.core import names
from triton_ner.core.aggregation import Windows, aggregate_requests, to_json
from triton_ner.backend import (config_parameter, error_response, input_array, input_texts, repository_path,
                                request_parameters, response)
from triton_ner.core.parameters import parse
from triton_ner.core.tokenization import load_vocabulary

_WINDOW_TENSORS = (names.INPUT_IDS, names.OFFSETS, names.SPECIAL_TOKENS_MASK, names.LOGITS, names.TEXT_INDEX)


class TritonPythonModel:
    def initialize(self, args):
        self.vocab = load_vocabulary(repository_path(args, config_parameter(args, "tokenizer_dir")))

    def _read(self, request) -> Windows | Exception:
        try:
            options = parse(request_parameters(request))
            # Every tensor holds one request: [1, windows, ...].
            return Windows(input_texts(request, names.TEXT), *(input_array(request, n)[0] for n in _WINDOW_TENSORS),
                           strategy=options.aggregation_strategy, ignore_labels=options.ignore_labels)
        except Exception as error:  # noqa: BLE001: refused alone, the rest of the batch goes on
            return error

    def execute(self, requests):
        answers = [self._read(r) for r in requests]
        valid = [i for i, answer in enumerate(answers) if isinstance(answer, Windows)]
        try:
            found = aggregate_requests([answers[i] for i in valid], self.vocab)
        except Exception:  # noqa: BLE001: find the request at fault
            found = []
            for i in valid:
                try:
                    found.extend(aggregate_requests([answers[i]], self.vocab))
                except Exception as error:  # noqa: BLE001
                    found.append(error)
        for i, results in zip(valid, found):
            answers[i] = results if isinstance(results, Exception) else _response(results)
        return [error_response(answer) if isinstance(answer, Exception) else answer for answer in answers]


def _response(results: list[list[dict]]):
    return response(**{names.ENTITIES: np.array([[to_json(entities) for entities in results]], dtype=np.object_)})

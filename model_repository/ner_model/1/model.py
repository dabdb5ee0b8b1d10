"""Model step on CPU: ONNX Runtime on the batch the dynamic batcher formed from several requests.

Each request brings ``[windows, tokens]`` of its own length. All rows are pooled, sorted by length and run
in groups of at most ``max_tokens_per_run`` padded tokens; each request gets back its own rows.
"""

import numpy as np
import onnxruntime as ort

from ner import names
from ner.backend import config_parameter, input_array, response
from ner.batching import pad_stack, plan_runs, split_like


class TritonPythonModel:
    def initialize(self, args):
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(config_parameter(args, "intra_op_threads"))
        path = f"{args['model_repository']}/{args['model_version']}/{config_parameter(args, 'model_file')}"
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.max_tokens = int(config_parameter(args, "max_tokens_per_run"))

    def execute(self, requests):
        ids = [input_array(r, names.INPUT_IDS) for r in requests]
        all_ids = pad_stack(ids)
        all_masks = pad_stack([input_array(r, names.ATTENTION_MASK) for r in requests])
        lengths = all_masks.sum(axis=1)
        logits = None
        for rows in plan_runs(lengths, self.max_tokens):
            width = int(lengths[rows].max())
            out = self.session.run([names.LOGITS], {names.INPUT_IDS: all_ids[rows, :width],
                                                    names.ATTENTION_MASK: all_masks[rows, :width]})[0]
            if logits is None:
                logits = np.zeros((*all_ids.shape, out.shape[-1]), dtype=out.dtype)
            logits[rows, :width] = out
        return [response(**{names.LOGITS: piece}) for piece in split_like(logits, ids)]

"""Model step on CPU: ONNX Runtime on the batch the dynamic batcher formed from several requests.

Each request brings ``[texts, tokens]`` of its own length; they are padded to the longest, run as one
batch, and each request gets back its own rows and length.
"""

import onnxruntime as ort

from ner import names
from ner.backend import config_parameter, input_array, response
from ner.batching import pad_stack, split_like


class TritonPythonModel:
    def initialize(self, args):
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(config_parameter(args, "intra_op_threads"))
        path = f"{args['model_repository']}/{args['model_version']}/{config_parameter(args, 'model_file')}"
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        ids = [input_array(r, names.INPUT_IDS) for r in requests]
        masks = [input_array(r, names.ATTENTION_MASK) for r in requests]
        logits = self.session.run(
            [names.LOGITS], {names.INPUT_IDS: pad_stack(ids), names.ATTENTION_MASK: pad_stack(masks)})[0]
        return [response(**{names.LOGITS: piece}) for piece in split_like(logits, ids)]

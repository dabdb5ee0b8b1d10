"""Model step on CPU: the exported model (ONNX Runtime or TorchScript) on the dynamic batcher's batch.

Each request brings ``[windows, tokens]`` of its own length. All rows are pooled, sorted by length and run
in groups of at most ``max_tokens_per_run`` padded tokens; each request gets back its own rows.
"""

from ner import names
from ner.backend import config_parameter, input_array, response
from ner.batching import pad_stack, run_in_groups, split_like
from ner.runtime import load_runner


class TritonPythonModel:
    def initialize(self, args):
        path = f"{args['model_repository']}/{args['model_version']}/{config_parameter(args, 'model_file')}"
        self.run = load_runner(path, int(config_parameter(args, "intra_op_threads")))
        self.max_tokens = int(config_parameter(args, "max_tokens_per_run"))

    def execute(self, requests):
        ids = [input_array(r, names.INPUT_IDS) for r in requests]
        masks = [input_array(r, names.ATTENTION_MASK) for r in requests]
        logits = run_in_groups(self.run, pad_stack(ids), pad_stack(masks), self.max_tokens)
        return [response(**{names.LOGITS: piece}) for piece in split_like(logits, ids)]

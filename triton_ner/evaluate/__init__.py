"""``ner-eval``: the accuracy of the served model on CoNLL-format data, beside the same checkpoint in process
(:mod:`triton_ner.evaluate.scores`). The in-process side needs PyTorch and transformers (the ``export`` extra);
the served side only the ``eval`` extra."""

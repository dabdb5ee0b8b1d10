"""``python -m triton_ner.evaluate``: the same as ``ner-eval``."""

from triton_ner.evaluate.scores import app

app()

"""dslim/distilbert-NER (or any Hugging Face token classifier) served on NVIDIA Triton Inference Server.

One import name for everything installed:

- :mod:`triton_ner.core`: names, tokenization, BIO aggregation, batching, model runners; no Triton import.
- :mod:`triton_ner.python_backend`: the glue the Python-backend models (``model_repository/*/1/model.py``) use.
- :mod:`triton_ner.server`: the local ``tritonserver`` launcher; :mod:`triton_ner.serve` and
  :mod:`triton_ner.demo` are its commands.
- :mod:`triton_ner.client`, :mod:`triton_ner.export`, :mod:`triton_ner.loadtest`: the top-level folders
  ``client/``, ``export/`` and ``loadtest/``; :mod:`triton_ner.model_repository`: the models' code, which the
  export copies (package data).
"""

from pathlib import Path as _Path

# setuptools maps client/, export/, loadtest/ and model_repository/ into this package when it builds the wheel
# (pyproject.toml, package-dir). In a source checkout they sit beside this folder: the checkout's root on the
# package path makes the same names import from it, installed (editable) or not.
_checkout = _Path(__file__).resolve().parents[1]
if (_checkout / "pyproject.toml").is_file() and (_checkout / "client" / "__init__.py").is_file():
    __path__.append(str(_checkout))

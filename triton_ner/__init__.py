"""dslim/distilbert-NER (or any Hugging Face token classifier) served on NVIDIA Triton Inference Server.

One import name for everything installed, each file under exactly one name:

- :mod:`triton_ner.core`: names, tokenization, BIO aggregation, batching, model runners; no Triton import.
- :mod:`triton_ner.python_backend`: the glue the Python-backend models (``model_repository/*/1/model.py``) use.
- :mod:`triton_ner.server`: the local ``tritonserver`` launcher; :mod:`triton_ner.serve` and
  :mod:`triton_ner.demo` are its commands; :mod:`triton_ner.evaluate` is ``ner-eval``.
- :mod:`triton_ner.client` and :mod:`triton_ner.export` are the checkout's top-level folders ``client/`` and
  ``export/``, mapped here by the build (``pyproject.toml``, ``package-dir``); :mod:`triton_ner.model_repository`
  is ``model_repository/``, the models' code, which the export copies (package data).
- The load-test tooling is not here: ``loadtest/`` is a distribution of its own (``loadtest/pyproject.toml``)
  with an import name of its own, ``triton_ner_loadtest``, so that serving installs carry none of it.

In a checkout, ``make setup`` installs both distributions editable, so that these names resolve to the checkout's
folders; the folders are never imported by their own names (``client``, ``export``, ...).
"""

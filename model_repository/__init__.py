"""The Python-backend models' code (``<model>/1/model.py``) and a default export's configs: package data of
:mod:`triton_ner.model_repository`, which ``ner-export`` copies into the repository it writes."""

"""The pure core: names, parameters, tokenization, BIO aggregation, batching and model runners.

Plain functions over strings and numpy arrays, used alike by the Python-backend models, the in-process reference
and the tests. Nothing here imports Triton, the launcher or a command-line library (tests/unit/test_layout.py).
"""

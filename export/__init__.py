"""Hugging Face token-classification checkpoint to a Triton model repository (``ner-export``)."""

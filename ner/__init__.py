"""Core of the NER-on-Triton bundle: names, tokenization and BIO aggregation, with no Triton import."""

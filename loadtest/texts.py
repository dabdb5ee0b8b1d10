"""Request texts for load tests and benchmarks: CoNLL-like sentences, news paragraphs, long documents.

Drawn from :mod:`export.corpus` with a seeded generator, so a seed gives the same texts everywhere.
"""

from __future__ import annotations

import random

from triton_ner.export import corpus

SCENARIOS = ("short", "news", "long")


def words_text(rng: random.Random, words: int) -> str:
    """Generated sentences cut to exactly ``words`` words."""
    found: list[str] = []
    while len(found) < words:
        found += corpus.sentence(rng).text.split()
    return " ".join(found[:words])


def scenario_text(scenario: str, rng: random.Random) -> str:
    """One text of a scenario: a sentence, a news paragraph (60 to 150 words) or a document (> 512 tokens)."""
    if scenario == "short":
        return corpus.sentence(rng).text
    if scenario == "news":
        return words_text(rng, rng.randint(60, 150))
    if scenario == "long":
        return words_text(rng, rng.randint(600, 1200))
    raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")


def benchmark_corpus(count: int, seed: int = 0, long_share: float = 0.03) -> list[str]:
    """Sentences of 5 to 40 words and a few long documents (600 words), the same for the same seed."""
    rng = random.Random(seed)
    return [words_text(rng, 600 if rng.random() < long_share else rng.randint(5, 40)) for _ in range(count)]

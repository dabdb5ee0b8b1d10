"""Generated CoNLL-style sentences: templates filled from lists of people, places, organisations and misc.

Used to train the fixture model, as the parity corpus of the tests and as the benchmark corpus.
Everything is drawn from a seeded ``random.Random``, so a seed gives the same sentences everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST_NAMES = (
    "Wolfgang", "Angela", "Maria", "John", "Sarah", "Pierre", "Giulia", "Hiroshi", "Olga", "Ahmed",
    "Carlos", "Ingrid", "Fatima", "Liam", "Sofia", "Mateo", "Elena", "Lars", "Priya", "Kwame",
    "Zoltan", "Ximena", "Bartholomew", "Siobhan", "Jürgen", "José", "Chloé", "Björn", "Dmitri", "Aoife",
)
LAST_NAMES = (
    "Schmidt", "Merkel", "Garcia", "Smith", "Dubois", "Rossi", "Tanaka", "Ivanova", "Hassan", "Santos",
    "Johansson", "Okafor", "Murphy", "Novak", "Kowalski", "Müller", "O'Brien", "Smith-Jones", "Nakamura",
    "Papadopoulos", "Van der Berg", "Fitzgerald", "Abernathy", "Krzyzanowski",
)
PLACES = (
    "Berlin", "Paris", "London", "Madrid", "Rome", "Tokyo", "Moscow", "Cairo", "Lagos", "Lima",
    "New York", "San Francisco", "Rio de Janeiro", "Hamburg", "Munich", "Vienna", "Oslo", "Dublin",
    "Germany", "France", "Japan", "Brazil", "Nigeria", "Canada", "Kenya", "Australia", "Zürich",
    "Kraków", "Reykjavik", "Ouagadougou", "Saskatchewan", "Lake Titicaca",
)
ORGS = (
    "Siemens", "Google", "the United Nations", "Reuters", "Deutsche Bank", "Toyota", "FIFA", "NASA",
    "Microsoft", "the European Commission", "Bayern Munich", "Real Madrid", "BBC", "Volkswagen",
    "Red Cross", "Interpol", "Goldman Sachs", "Nokia", "Airbus", "the World Bank", "Ericsson",
    "Unilever", "Petrobras", "Samsung Electronics",
)
MISC = (
    "German", "French", "Japanese", "Olympic", "Christmas", "Nobel Prize", "World Cup", "English",
    "Russian", "Brazilian", "Euro", "Tour de France", "Wimbledon", "Catholic", "Muslim", "Oscar",
    "Grand Prix", "Champions League", "Italian", "Kenyan",
)
NOUNS = (
    "report", "meeting", "agreement", "match", "statement", "deal", "market", "election", "season",
    "plan", "budget", "talks", "visit", "conference", "study", "project", "contract", "strike",
)
VERBS = ("said", "announced", "reported", "confirmed", "denied", "expected", "warned", "added")

# Each template is a list of words; a word in braces is replaced by an entity of that type.
TEMPLATES = (
    "My name is {PER} and I live in {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "{PER} , who was born in {LOC} , joined {ORG} last year .",
    "{ORG} {VERB} on Monday that the {NOUN} with {ORG} was over .",
    "The {MISC} {NOUN} in {LOC} was {VERB} by {PER} .",
    "{PER} met {PER} in {LOC} to discuss the {NOUN} .",
    "Shares of {ORG} fell 3 percent in {LOC} after the {NOUN} .",
    "{LOC} beat {LOC} 2-1 in the {MISC} final .",
    "In {LOC} , {PER} {VERB} the {NOUN} would go ahead .",
    "The {NOUN} was {VERB} by a spokesman for {ORG} .",
    "{PER} won the {MISC} for the second time .",
    "According to {ORG} , prices in {LOC} rose sharply .",
    "{MISC} officials {VERB} the {NOUN} would be delayed .",
    "It rained all day and the {NOUN} was cancelled .",
    "Nobody {VERB} anything about the {NOUN} .",
    "I live in {LOC} .",
    "{PER} lives in {LOC} .",
    "Hello {PER} , welcome to {LOC} !",
)

NO_SPACE_BEFORE = {".", ",", "!", "?"}


@dataclass(frozen=True)
class Sentence:
    """A sentence as words with IOB2 tags, and its text (punctuation attached to the previous word)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(w if i == 0 or w in NO_SPACE_BEFORE else " " + w for i, w in enumerate(self.words))

    def spans(self) -> list[tuple[int, int, str]]:
        """Character spans ``(start, end, tag)`` of every word in :attr:`text`."""
        spans, position = [], 0
        for i, (word, tag) in enumerate(zip(self.words, self.tags, strict=True)):
            if i > 0 and word not in NO_SPACE_BEFORE:
                position += 1
            spans.append((position, position + len(word), tag))
            position += len(word)
        return spans


def _person(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(FIRST_NAMES)
    if roll < 0.6:
        return rng.choice(LAST_NAMES)
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _fill(slot: str, rng: random.Random) -> list[tuple[str, str]]:
    if slot == "PER":
        name = _person(rng)
    elif slot == "LOC":
        name = rng.choice(PLACES)
    elif slot == "ORG":
        name = rng.choice(ORGS)
    elif slot == "MISC":
        name = rng.choice(MISC)
    elif slot == "NOUN":
        return [(rng.choice(NOUNS), "O")]
    else:
        return [(rng.choice(VERBS), "O")]
    words = name.split()
    if words[0] == "the":  # "the United Nations": the article is not part of the entity
        return [("the", "O")] + [(w, ("B-" if i == 0 else "I-") + slot) for i, w in enumerate(words[1:])]
    return [(w, ("B-" if i == 0 else "I-") + slot) for i, w in enumerate(words)]


def sentence(rng: random.Random) -> Sentence:
    """One sentence from a random template."""
    pairs: list[tuple[str, str]] = []
    for word in rng.choice(TEMPLATES).split():
        if word.startswith("{"):
            pairs.extend(_fill(word[1:-1], rng))
        else:
            pairs.append((word, "O"))
    words, tags = zip(*pairs, strict=True)
    return Sentence(tuple(words), tuple(tags))


def sentences(count: int, seed: int = 0) -> list[Sentence]:
    """``count`` sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(count)]


def texts(count: int, seed: int = 0) -> list[str]:
    """The texts of :func:`sentences`."""
    return [s.text for s in sentences(count, seed)]

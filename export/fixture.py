"""The fixture model: a tiny DistilBERT token classifier trained in seconds, offline and deterministically.

It has the labels of dslim/distilbert-NER and a cased WordPiece tokenizer of its own, and is saved with
``save_pretrained``, so everything downstream treats it like a Hub checkpoint. It is cached under
``.cache/`` keyed by the hash of the code that makes it; weights are never committed.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import string
import tempfile
from pathlib import Path

from export import corpus
from ner.names import CONLL_LABELS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Kept out of the vocabulary as whole words, so they split into several WordPiece tokens.
SPLIT_WORDS = {
    "Zoltan", "Ximena", "Bartholomew", "Siobhan", "Krzyzanowski", "Abernathy", "Papadopoulos",
    "Ouagadougou", "Saskatchewan", "Reykjavik", "Fitzgerald", "Titicaca",
}
SUFFIXES = ("er", "an", "ia", "ski", "son", "ing", "ed", "s", "ow", "ath", "ald", "go", "ou", "ena")
SEED = 1234
TRAIN_SENTENCES = 2000
EPOCHS = 3


def cache_dir() -> Path:
    """Where generated models live: ``$NER_CACHE_DIR`` or ``.cache/`` in the project."""
    return Path(os.environ.get("NER_CACHE_DIR", PROJECT_ROOT / ".cache"))


def _code_hash() -> str:
    digest = hashlib.sha256()
    for source in (corpus.__file__, __file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


def vocabulary() -> dict[str, int]:
    """A cased WordPiece vocabulary: specials, characters (plain and ``##``), suffixes and corpus words."""
    alphabet = set(string.ascii_letters + string.digits + string.punctuation)
    alphabet |= {chr(c) for c in range(0xC0, 0x180) if chr(c).isalpha()}  # Latin-1 and Latin Extended-A letters
    words: set[str] = set()
    for template in corpus.TEMPLATES:
        words |= {w for w in template.split() if not w.startswith("{")}
    for names in (corpus.FIRST_NAMES, corpus.LAST_NAMES, corpus.PLACES, corpus.ORGS, corpus.MISC,
                  corpus.NOUNS, corpus.VERBS):
        for name in names:
            words |= set(name.split())
            alphabet |= set(name)
    words -= SPLIT_WORDS
    tokens = list(SPECIAL_TOKENS)
    tokens += sorted(alphabet)
    tokens += sorted("##" + c for c in alphabet)
    tokens += sorted("##" + s for s in SUFFIXES)
    tokens += sorted(w for w in words if w not in alphabet)
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def tokenizer():
    """The fixture's fast tokenizer (same normalization as bert-base-cased: no lower-casing, accents kept)."""
    from transformers import DistilBertTokenizer

    return DistilBertTokenizer(vocab=vocabulary(), do_lower_case=False, model_max_length=512)


def _encode(tok, sentences: list[corpus.Sentence], label2id: dict[str, int]):
    """Token ids and token labels: the word's tag on its first token, ``I-`` on the rest, -100 on specials."""
    import torch

    encoded = tok([s.text for s in sentences], return_offsets_mapping=True, padding=True,
                  return_special_tokens_mask=True, return_tensors="pt")
    labels = torch.full_like(encoded["input_ids"], -100)
    for row, sent in enumerate(sentences):
        spans = sent.spans()
        previous_word = None
        for col, (start, end) in enumerate(encoded["offset_mapping"][row].tolist()):
            if encoded["special_tokens_mask"][row, col] or end == start:
                continue
            word = next(i for i, (s, e, _) in enumerate(spans) if s <= start < e)
            tag = spans[word][2]
            if word == previous_word and tag.startswith("B-"):
                tag = "I-" + tag[2:]
            labels[row, col] = label2id[tag]
            previous_word = word
    return encoded["input_ids"], encoded["attention_mask"], labels


def train(output: Path) -> Path:
    """Train the fixture model and ``save_pretrained`` it (with its tokenizer) into ``output``."""
    import torch
    from transformers import DistilBertConfig, DistilBertForTokenClassification
    from transformers.utils import logging

    logging.disable_progress_bar()

    id2label = dict(enumerate(CONLL_LABELS))
    label2id = {label: i for i, label in id2label.items()}
    tok = tokenizer()
    config = DistilBertConfig(
        vocab_size=len(tok), max_position_embeddings=512, n_layers=2, n_heads=2, dim=64, hidden_dim=256,
        dropout=0.0, attention_dropout=0.0, id2label=id2label, label2id=label2id,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums, hence the same weights, on every machine
    try:
        torch.manual_seed(SEED)
        model = DistilBertForTokenClassification(config)
        ids, mask, labels = _encode(tok, corpus.sentences(TRAIN_SENTENCES, seed=SEED), label2id)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        order = random.Random(SEED)
        model.train()
        for _ in range(EPOCHS):
            batches = list(range(0, len(ids), 32))
            order.shuffle(batches)
            for start in batches:
                loss = model(input_ids=ids[start:start + 32], attention_mask=mask[start:start + 32],
                             labels=labels[start:start + 32]).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(output)
    tok.save_pretrained(output)
    return output


def fixture_model() -> Path:
    """The path of the cached fixture checkpoint, training it first if needed (a few seconds)."""
    target = cache_dir() / f"fixture-ner-{_code_hash()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fixture-", dir=target.parent))
    try:
        train(work)
        try:
            work.rename(target)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target

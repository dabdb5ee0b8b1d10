"""Models made offline and deterministically by the project, for tests and benchmarks.

- The fixture model: a tiny DistilBERT token classifier trained in seconds on generated sentences, with the
  labels of dslim/distilbert-NER and a cased WordPiece tokenizer of its own, so that "My name is Wolfgang and I
  live in Berlin" really gives PER and LOC.
- The family models: the same training on tiny models of the other families a user brings, each with the kind of
  tokenizer its family has, made here: BERT uncased (WordPiece, lower-cased, accents stripped), RoBERTa (byte-level
  BPE), XLM-RoBERTa and DeBERTa-v2 (Unigram, SentencePiece's ``▁`` word marks).
- The benchmark model: a full-size DistilBERT (6 layers, 768 hidden, 12 heads, a 28,996-token cased WordPiece
  vocabulary, 9 labels) with random weights: the compute of the real model, none of its knowledge.

All are saved with ``save_pretrained``, so everything downstream treats them like Hub checkpoints, and cached
under ``.cache/`` keyed by the hash of the code that makes them; weights are never committed.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import string
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triton_ner.core.names import CONLL_LABELS
from triton_ner.export import corpus

if TYPE_CHECKING:
    import torch
    from transformers import DistilBertTokenizer, PreTrainedTokenizerBase

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Kept out of the vocabulary as whole words, so they split into several WordPiece tokens.
SPLIT_WORDS = {
    "Zoltan", "Ximena", "Bartholomew", "Siobhan", "Krzyzanowski", "Abernathy", "Papadopoulos",
    "Ouagadougou", "Saskatchewan", "Reykjavik", "Fitzgerald", "Titicaca",
}
SUFFIXES = ("er", "an", "ia", "ski", "son", "ing", "ed", "s", "ow", "ath", "ald", "go", "ou", "ena")
# Label sets: dslim/distilbert-NER's, and a second one with plain tags (no B-/I-) in another order, to test
# that nothing assumes CoNLL's labels.
LABEL_SETS = {
    "conll": CONLL_LABELS,
    "plain": ("LOC", "O", "PER", "MISC", "ORG"),
}
SEED = 1234
BENCHMARK_VOCABULARY = 28996  # bert-base-cased's size
TRAIN_SENTENCES = 2000
EPOCHS = 3


def cache_dir() -> Path:
    """Where generated models live: ``$NER_CACHE_DIR``, else ``.cache/`` of a source checkout, else the user's
    cache (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``distilbert-ner-triton`` (never inside an installation)."""
    if "NER_CACHE_DIR" in os.environ:
        return Path(os.environ["NER_CACHE_DIR"])
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distilbert-ner-triton"


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


def benchmark_vocabulary() -> dict[str, int]:
    """The fixture vocabulary grown to bert-base-cased's size with generated word pieces (fixed seed)."""
    tokens = dict(vocabulary())
    rng = random.Random(SEED)
    while len(tokens) < BENCHMARK_VOCABULARY:
        piece = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8)))
        piece = rng.choice(["", "##"]) + (piece.capitalize() if rng.random() < 0.3 else piece)
        tokens.setdefault(piece, len(tokens))
    return tokens


def tokenizer(vocab: dict[str, int] | None = None) -> DistilBertTokenizer:
    """A fast tokenizer with bert-base-cased's normalization (no lower-casing, accents kept)."""
    from transformers import DistilBertTokenizer

    return DistilBertTokenizer(vocab=vocab or vocabulary(), do_lower_case=False, model_max_length=512)


def _encode(tok: PreTrainedTokenizerBase, sentences: list[corpus.Sentence], label2id: dict[str, int]
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
            word = next((i for i, (s, e, _) in enumerate(spans) if s <= start < e), None)
            if word is None:  # a token of the space between words (a lone SentencePiece "▁")
                continue
            tag = spans[word][2]
            if word == previous_word and tag.startswith("B-"):
                tag = "I-" + tag[2:]
            labels[row, col] = label2id[tag] if tag in label2id else label2id[tag.split("-", 1)[-1]]
            previous_word = word
    return encoded["input_ids"], encoded["attention_mask"], labels


def train(output: Path, label_set: str = "conll") -> Path:
    """Train the fixture model and ``save_pretrained`` it (with its tokenizer) into ``output``."""
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    id2label = dict(enumerate(LABEL_SETS[label_set]))
    tok = tokenizer()
    config = DistilBertConfig(
        vocab_size=len(tok), max_position_embeddings=512, n_layers=2, n_heads=2, dim=64, hidden_dim=256,
        dropout=0.0, attention_dropout=0.0, id2label=id2label, label2id={v: k for k, v in id2label.items()},
    )
    return _fit(DistilBertForTokenClassification, config, tok, output)


def _fit(model_class: type, config: Any, tok: PreTrainedTokenizerBase, output: Path) -> Path:
    """Train a token classifier of ``model_class`` from seeded weights on the generated sentences, then
    ``save_pretrained`` it with ``tok`` into ``output``."""
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    label2id = config.label2id
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums, hence the same weights, on every machine
    try:
        torch.manual_seed(SEED)
        model = model_class(config)
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


FAMILIES = ("bert-uncased", "roberta", "xlm-roberta", "deberta-v2")
FAMILY_VOCABULARY = 1000
# Tiny encoders: 2 layers, 64 wide, no dropout.
_TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _alphabet() -> list[str]:
    """Every character of the fixture vocabulary: a tokenizer trained on the sentences knows the digits,
    punctuation and accented letters of the tests' texts too."""
    return sorted(t for t in vocabulary() if len(t) == 1)


def _family_texts() -> list[str]:
    """What the families' tokenizers are trained on: other sentences than the models', and the alphabet."""
    return corpus.texts(TRAIN_SENTENCES, seed=SEED + 1) + [" ".join(_alphabet())]


def _uncased(token: str) -> str:
    """A vocabulary entry as BERT uncased's normalizer leaves text: lower case, accents stripped."""
    if token in SPECIAL_TOKENS:
        return token
    return "".join(c for c in unicodedata.normalize("NFD", token.lower()) if unicodedata.category(c) != "Mn")


def _trained(model: Any, pre_tokenizer: Any, trainer: Any, normalizer: Any = None) -> dict:
    """The ``model`` section of a ``tokenizers`` tokenizer trained on the generated sentences (vocabulary,
    merges or scores), which the family's tokenizer class is then built from, as its checkpoints are."""
    import json

    from tokenizers import Tokenizer

    backend = Tokenizer(model)
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.train_from_iterator(_family_texts(), trainer)
    return json.loads(backend.to_str())["model"]


def family_tokenizer(family: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a family's model, its vocabulary made here, built by the family's own tokenizer class.

    ``bert-uncased``: WordPiece after BERT's normalizer (lower case, accents stripped), the fixture's vocabulary
    uncased (a trained WordPiece vocabulary varies with the number of threads); ``roberta``: byte-level BPE
    (``Ġ`` marks a space before a token, no prefix space, offsets trimmed); ``xlm-roberta`` and ``deberta-v2``:
    Unigram after SentencePiece's ``▁`` (Metaspace), with their own special tokens.
    """
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    if family == "bert-uncased":
        from transformers import BertTokenizer

        uncased = dict.fromkeys(_uncased(token) for token in vocabulary())
        return BertTokenizer(vocab={token: i for i, token in enumerate(t for t in uncased if t.strip("#"))},
                                 do_lower_case=True, model_max_length=512)
    if family == "roberta":
        from transformers import RobertaTokenizer

        trained = _trained(models.BPE(), pre_tokenizers.ByteLevel(add_prefix_space=False),
                           trainers.BpeTrainer(vocab_size=FAMILY_VOCABULARY, show_progress=False,
                                               special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        # Pairs, as the Rust BPE takes them (transformers' hint says strings, which it refuses).
        merges: Any = [tuple(m) for m in trained["merges"]]
        return RobertaTokenizer(vocab=trained["vocab"], merges=merges, add_prefix_space=False, model_max_length=512)
    if family in ("xlm-roberta", "deberta-v2"):
        from transformers import DebertaV2Tokenizer, XLMRobertaTokenizer

        specials = (["<s>", "<pad>", "</s>", "<unk>"] if family == "xlm-roberta"
                    else ["[PAD]", "[CLS]", "[SEP]", "[UNK]"])
        trained = _trained(models.Unigram(), pre_tokenizers.Metaspace(),
                           trainers.UnigramTrainer(vocab_size=FAMILY_VOCABULARY, special_tokens=specials,
                                                   unk_token=specials[3], initial_alphabet=_alphabet(),
                                                   show_progress=False),
                           normalizers.NFKC())
        # The trainer's scores vary in their last digits with the number of threads, and the characters it keeps
        # only to cover the alphabet are ranked in hash order: the pieces rounded, each character scored by its
        # frequency in the sentences, and sorted, the pieces and their ids are the same everywhere.
        counts = Counter("".join(_family_texts()).replace(" ", "▁"))
        total = sum(counts.values())
        scored = [(piece, round(math.log(max(counts[piece], 1) / total) if len(piece) == 1 else score, 6))
                  for piece, score in trained["vocab"][len(specials):]]
        pieces = [(piece, 0.0) for piece in specials] + sorted(scored, key=lambda p: (-p[1], p[0]))
        if family == "xlm-roberta":
            return XLMRobertaTokenizer(vocab=[*pieces, ("<mask>", 0.0)], model_max_length=512)
        return DebertaV2Tokenizer(vocab=[*pieces, ("[MASK]", 0.0)], unk_id=3, model_max_length=512)
    raise ValueError(f"unknown model family {family!r}: one of {', '.join(FAMILIES)}")


def train_family(output: Path, family: str) -> Path:
    """Train a tiny token classifier of ``family`` (:data:`FAMILIES`) with :func:`family_tokenizer`, CoNLL's labels,
    and ``save_pretrained`` both into ``output``."""
    from transformers import (
        BertConfig,
        BertForTokenClassification,
        DebertaV2Config,
        DebertaV2ForTokenClassification,
        RobertaConfig,
        RobertaForTokenClassification,
        XLMRobertaConfig,
        XLMRobertaForTokenClassification,
    )

    tok = family_tokenizer(family)
    id2label = dict(enumerate(CONLL_LABELS))
    common: dict[str, Any] = _TINY | {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "id2label": id2label,
                      "label2id": {v: k for k, v in id2label.items()}}
    # RoBERTa's positions start after the padding id: 512 tokens need 514 positions.
    roberta: dict[str, Any] = common | {"max_position_embeddings": 514, "type_vocab_size": 1,
                                        "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id}
    made = {
        "bert-uncased": lambda: (BertForTokenClassification, BertConfig(**common, max_position_embeddings=512)),
        "roberta": lambda: (RobertaForTokenClassification, RobertaConfig(**roberta)),
        "xlm-roberta": lambda: (XLMRobertaForTokenClassification, XLMRobertaConfig(**roberta)),
        # DeBERTa-v3's layout: relative positions only, shared keys, no token types.
        "deberta-v2": lambda: (DebertaV2ForTokenClassification, DebertaV2Config(**common | {
            "max_position_embeddings": 512, "relative_attention": True, "position_buckets": 256,
            "pos_att_type": ["p2c", "c2p"], "position_biased_input": False, "share_att_key": True,
            "type_vocab_size": 0, "norm_rel_ebd": "layer_norm", "max_relative_positions": -1})),
    }
    model_class, config = made[family]()
    return _fit(model_class, config, tok, output)


def build_benchmark(output: Path) -> Path:
    """Save a full-size DistilBERT token classifier with random weights (fixed seed) into ``output``.

    The classifier head is drawn wider than the usual initialization so that labels are far apart: with the
    default 0.02 every token is a near-tie between all nine labels, and the argmax would flip on rounding.
    """
    import torch
    from transformers import DistilBertConfig, DistilBertForTokenClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    id2label = dict(enumerate(CONLL_LABELS))
    tok = tokenizer(benchmark_vocabulary())
    config = DistilBertConfig(vocab_size=len(tok), max_position_embeddings=512, n_layers=6, n_heads=12, dim=768,
                              hidden_dim=3072, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(SEED)
    model = DistilBertForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.1)
    model.save_pretrained(output)
    tok.save_pretrained(output)
    return output


def fixture_model(label_set: str = "conll") -> Path:
    """The path of the cached fixture checkpoint, training it first if needed (a few seconds)."""
    suffix = "" if label_set == "conll" else f"-{label_set}"
    return _cached(f"fixture-ner{suffix}", lambda work: train(work, label_set))


def family_model(family: str) -> Path:
    """The path of the cached fixture checkpoint of another model family (:data:`FAMILIES`), training it first if
    needed (seconds)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}: one of {', '.join(FAMILIES)}")
    return _cached(f"fixture-{family}", lambda work: train_family(work, family))


def benchmark_model() -> Path:
    """The path of the cached full-size benchmark checkpoint, building it first if needed."""
    return _cached("benchmark-distilbert", build_benchmark)


def _cached(name: str, make: Callable[[Path], Path]) -> Path:
    target = cache_dir() / f"{name}-{_code_hash()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fixture-", dir=target.parent))
    try:
        make(work)
        try:
            work.rename(target)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target

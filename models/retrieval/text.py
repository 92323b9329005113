"""Tokenization for BM25: maintenance text is full of identifiers (P-101, RUL0012, M005c,
CH-501.CHW_SUPPLY) that a generic word tokenizer splits into meaningless pieces. We keep each
identifier whole *and* add its parts, so "P-101", "p101" and "101" all find the pump; ordinary
words are lower-cased, stop-word filtered and Snowball-stemmed (PyStemmer, bm25s's stemmer)."""

from __future__ import annotations

import re
from functools import lru_cache

from bm25s.stopwords import STOPWORDS_EN

WORD = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")
STOPWORDS = frozenset(STOPWORDS_EN) | {"what", "which", "how", "why", "when", "who", "does", "did", "do", "is", "was"}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    stem = _stemmer().stemWord
    for word in WORD.findall(text.lower()):
        parts = re.split(r"[-_.]", word)
        if len(parts) > 1:
            tokens.append(word)
            tokens.append("".join(parts))  # "p-101" also as "p101"
            tokens.extend(stem(p) for p in parts if p not in STOPWORDS and len(p) > 1)
        elif word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            tokens.append(stem(word))
    return tokens


def is_identifier(token: str) -> bool:
    """A token that names one thing (a tag, a code): letters and digits mixed, like p-101 or rul0012."""
    return bool(re.search(r"[a-z]", token) and re.search(r"\d", token))

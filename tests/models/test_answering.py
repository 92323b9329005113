"""Prompting, citation checking, the refusal and generation of models.answering."""

from __future__ import annotations

import pytest

from models import answering
from models.answering import Passage, QuestionError
from tests.phm.assistant.helpers import tiny_language_model

PASSAGES = [
    Passage(1, "P-101 note", "Bearings", "Drive-end bearing 6309-2Z/C3; oil ISO VG 68 every 4000 h.", dense=0.6),
    Passage(2, "Torque table", "row 3", "M20 anchor bolts: 410 N·m.", dense=0.4),
]


def test_parse_citations_separates_valid_and_made_up_numbers():
    valid, invalid = answering.parse_citations("Use ISO VG 68 [1]. Torque 410 N·m [2, 7]. Again [1][9].", 2)
    assert valid == [1, 2]
    assert invalid == [7, 9]


def test_invalid_citations_are_removed_from_the_answer_and_reported():
    answer = answering.finish_answer("Oil is ISO VG 68 [1][5]. Torque is 410 N·m [2, 6].", PASSAGES, model="m", seconds=0.1)
    assert answer.text == "Oil is ISO VG 68 [1]. Torque is 410 N·m [2]."
    assert answer.cited == [1, 2]
    assert answer.invalid_citations == [5, 6]


def test_citations_list_cited_passages_first_and_flags_them():
    answer = answering.finish_answer("Torque 410 N·m [2].", PASSAGES, model="m", seconds=0.1)
    citations = answer.citations()
    assert [(c["number"], c["cited"]) for c in citations] == [(2, True), (1, False)]
    assert citations[0]["document"] == "Torque table" and citations[0]["location"] == "row 3"


def test_prompt_numbers_every_passage_and_labels_live_data():
    live = Passage(3, "live: alarms of P-101", "as of now", "High vibration alarm, severity 700", kind="live")
    messages = answering.build_messages("Why is P-101 alarming?", [*PASSAGES, live], history=[("earlier question", "earlier answer")])
    assert messages[0]["role"] == "system" and "ONLY" in messages[0]["content"]
    assert messages[1:3] == [{"role": "user", "content": "earlier question"}, {"role": "assistant", "content": "earlier answer"}]
    prompt = messages[-1]["content"]
    assert "[1] (document: P-101 note, Bearings)" in prompt
    assert "[3] (live data: live: alarms of P-101, as of now)" in prompt
    assert prompt.rstrip().endswith("Answer with citations:")


@pytest.mark.parametrize(("question", "reason"), [("", "empty"), ("   ", "empty"), ("?!", "no words"), ("x" * 2001, "limit is 2000"), (42, "must be a string")])
def test_bad_questions_are_refused_with_reason(question, reason):
    with pytest.raises(QuestionError, match=reason):
        answering.validate_question(question)


def test_relevance_by_similarity_identifier_or_live_data():
    unrelated = [Passage(1, "d", "l", "Chiller tube cleaning.", dense=0.1)]
    assert not answering.is_relevant("What is the capital of France?", unrelated)
    assert answering.is_relevant("What is the capital of France?", [Passage(1, "d", "l", "text", dense=0.5)])
    assert answering.is_relevant("What maps to RUL0012?", [Passage(1, "d", "l", "rule_id: RUL0012; code CS005", dense=0.1)])
    assert answering.is_relevant("Why?", [Passage(1, "live: alarms", "now", "alarm", kind="live")])


def test_nothing_relevant_gives_the_refusal_without_calling_a_model():
    class Unreachable:
        def generate(self, *args, **kwargs):
            raise AssertionError("the model must not be called when nothing relevant was found")

    answer = answering.answer_from_passages("How do I bake bread?", [Passage(1, "d", "l", "Chiller oil analysis.", dense=0.05)], model=Unreachable())
    assert answer.refused and answer.text == answering.REFUSAL and answer.citations() == []


def test_generation_and_streaming_agree_on_a_real_model():
    model = tiny_language_model()
    messages = answering.build_messages("Which oil?", PASSAGES)
    blocking = model.generate(messages, max_new_tokens=8)
    streamed = "".join(model.stream(messages, max_new_tokens=8))
    assert blocking and blocking == streamed.strip()


def test_answer_from_passages_records_model_and_passages():
    answer = answering.answer_from_passages("Which oil does P-101 use?", PASSAGES, model=tiny_language_model(), max_new_tokens=6)
    assert not answer.refused
    assert answer.model == "tiny-random-llama"
    assert [p.number for p in answer.passages] == [1, 2]


@pytest.mark.slow
def test_default_smollm2_answers_with_a_valid_citation():
    """The packaged SmolLM2-135M answers a direct question from two passages and cites one of them."""
    answer = answering.answer_from_passages("Which oil grade does the P-101 bearing frame use?", PASSAGES, max_new_tokens=60)
    assert "68" in answer.text
    assert answer.cited and not answer.invalid_citations

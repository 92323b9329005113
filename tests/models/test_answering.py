"""Prompting, citation checking, the refusal and generation of models.answering."""

from __future__ import annotations

import pytest

from models import answering
from models.answering import Passage, QuestionError
from models.retrieval import grounding
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
    answer = answering.finish_answer("Oil is ISO VG 68 [1][5]. Torque is 410 N·m [2, 6].", PASSAGES, model="m", seconds=0.1, embed=None)
    assert answer.text == "Oil is ISO VG 68 [1]. Torque is 410 N·m [2]."
    assert answer.cited == [1, 2]
    assert answer.invalid_citations == [5, 6]
    assert answer.mode == "generated" and answer.draft.startswith("Oil is ISO VG 68 [1][5].")


def test_supported_sentences_get_the_citation_of_their_passage_whatever_the_model_wrote():
    answer = answering.finish_answer("The oil is ISO VG 68 [2]. It is changed every 4000 h.", PASSAGES, model="m", seconds=0.1, embed=None)
    assert answer.text == "The oil is ISO VG 68 [1]. It is changed every 4000 h [1]."
    assert answer.cited == [1]


def test_a_repeated_sentence_is_kept_once():
    answer = answering.finish_answer("The oil is ISO VG 68 [1]. Torque 410 N·m [2]. The oil is ISO VG 68 [1].", PASSAGES, model="m", seconds=0.1, embed=None)
    assert answer.text == "The oil is ISO VG 68 [1]. Torque 410 N·m [2]."


def test_sentences_no_passage_supports_are_dropped():
    draft = "The oil is ISO VG 68 [1]. Change it every 2000 hours [1]. Always consult a qualified technician first."
    answer = answering.finish_answer(draft, PASSAGES, model="m", seconds=0.1, embed=None)
    assert answer.text == "The oil is ISO VG 68 [1]."
    checks = {s["text"]: s for s in answer.sentences}
    assert checks["Change it every 2000 hours."]["missing_facts"] == ["2000"]  # an invented number is never supported
    assert not checks["Always consult a qualified technician first."]["supported"]


def test_without_a_supported_sentence_the_answer_quotes_the_passages():
    answer = answering.finish_answer("Pumps are important machines in many industries.", PASSAGES, model="m", seconds=0.1,
                                     question="Which oil does the P-101 bearing use?", embed=None)
    assert answer.mode == "extractive"
    assert answer.text.startswith(answering.EXTRACTIVE_LEAD)
    assert "- Drive-end bearing 6309-2Z/C3; oil ISO VG 68 every 4000 h [1]." in answer.text
    assert answer.cited[0] == 1
    assert "Pumps are important" not in answer.text and answer.draft == "Pumps are important machines in many industries."


def test_citations_list_cited_passages_first_and_flags_them():
    answer = answering.finish_answer("Torque 410 N·m [2].", PASSAGES, model="m", seconds=0.1, embed=None)
    citations = answer.citations()
    assert [(c["number"], c["cited"]) for c in citations] == [(2, True), (1, False)]
    assert citations[0]["document"] == "Torque table" and citations[0]["location"] == "row 3"


def test_prompt_numbers_every_passage_and_labels_live_data():
    live = Passage(3, "live: alarms of P-101", "as of now", "High vibration alarm, severity 700", kind="live")
    messages = answering.build_messages("Why is P-101 alarming?", [*PASSAGES, live], history=[("earlier question", "earlier answer")])
    assert messages[0]["role"] == "system" and "ONLY" in messages[0]["content"]
    assert messages[-3:-1] == [{"role": "user", "content": "earlier question"}, {"role": "assistant", "content": "earlier answer"}]
    prompt = messages[-1]["content"]
    assert "[1] (document: P-101 note, Bearings)" in prompt
    assert "[3] (live data: live: alarms of P-101, as of now)" in prompt
    assert prompt.rstrip().endswith("Answer with citations:")


def test_the_worked_example_comes_before_the_conversation(monkeypatch):
    monkeypatch.setattr(answering, "USE_EXAMPLE", True)
    messages = answering.build_messages("Which oil?", PASSAGES, history=[("earlier question", "earlier answer")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == answering.EXAMPLE_TURN[1] and messages[3]["content"] == "earlier question"
    monkeypatch.setattr(answering, "USE_EXAMPLE", False)
    assert [m["role"] for m in answering.build_messages("Which oil?", PASSAGES)] == ["system", "user"]


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


def test_a_question_about_a_tag_no_passage_mentions_is_refused_and_says_so():
    """Similar passages about other equipment are no answer about GT-900."""
    assert answering.is_relevant("Which oil does P-101 use?", PASSAGES)  # named by the passage's document
    question = "Which oil does the bearing of turbine GT-900 use?"
    assert not answering.is_relevant(question, PASSAGES)
    answer = answering.answer_from_passages(question, PASSAGES, model=None)
    assert answer.refused and answer.text.endswith("None of the records found mentions GT-900.")


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


def test_a_random_model_never_reaches_the_reader_unchecked():
    """A randomly initialised model writes noise: nothing of it is supported, so the reader gets the
    quoted passage (checked with the real MiniLM embedder) and its citation."""
    answer = answering.answer_from_passages("Which oil does the P-101 bearing use?", PASSAGES, model=tiny_language_model(), max_new_tokens=12)
    assert answer.mode == "extractive" and answer.cited[0] == 1
    assert "ISO VG 68 every 4000 h [1]" in answer.text
    assert answer.draft not in answer.text


@pytest.mark.slow
def test_default_smollm2_answers_with_a_valid_citation():
    """The packaged SmolLM2-135M answers a direct question from two passages and cites one of them."""
    answer = answering.answer_from_passages("Which oil grade does the P-101 bearing frame use?", PASSAGES, max_new_tokens=60)
    assert "68" in answer.text
    assert answer.cited == [1]
    assert all(s["supported"] for s in answer.sentences if s["text"] in answer.text)


# --- grounding checks ---------------------------------------------------------------------------------


def test_sentence_split_handles_lists_numbering_and_decimals():
    assert grounding.split_sentences("1. Check the oil. 2. Replace the seal [1]\n- Pressure is 3.5 bar. Done") == [
        "Check the oil.", "Replace the seal [1]", "Pressure is 3.5 bar.", "Done"]


def test_a_sentence_wrapped_over_lines_stays_one_sentence():
    """Markdown manuals wrap prose at ~100 characters; a line break inside a sentence is a space
    (it cut "(NPSH available below NPSH required" from "plus margin).")."""
    text = ("Cavitation happens when the suction pressure falls below what the pump needs (NPSH available below NPSH required\n"
            "plus margin). Signs: suction pressure drop.\n\nNext paragraph.\n- a list item\n1. numbered")
    assert grounding.split_sentences(text) == [
        "Cavitation happens when the suction pressure falls below what the pump needs (NPSH available below NPSH required plus margin).",
        "Signs: suction pressure drop.", "Next paragraph.", "a list item", "numbered"]
    assert grounding.passage_units("Pump cavitation > Symptoms\n" + text)[0].endswith("NPSH required plus margin).")


def test_echoed_prompt_labels_are_not_sentences():
    draft = "Check the suction strainer [1]. (document: procedure_cavitation.md, Pump cavitation > Checks) [2] (live data: alarms of P-101"
    assert grounding.split_sentences(draft) == ["Check the suction strainer [1]."]


def test_facts_are_numbers_and_identifiers():
    assert grounding.facts("Torque 410 N·m for M20 on P-101 at 3.5 bar [2]") == {"410", "m20", "p-101", "101", "3.5"}


def test_a_table_row_is_quoted_whole_and_the_heading_line_is_context():
    assert grounding.passage_units("codes — code: M005c; description: Misalignment in Flow Control Valve") == [
        "codes — code: M005c; description: Misalignment in Flow Control Valve"]
    assert grounding.passage_units("Pump > Bearings\nOil ISO VG 68. Check weekly.") == ["Oil ISO VG 68.", "Check weekly."]


def test_extractive_answer_prefers_the_record_naming_the_asked_code():
    rows = ["codes — code: M005b; description: Misalignment in Pump Coupling", "codes — code: M005c; description: Misalignment in Flow Control Valve"]
    extracts = grounding.extract_answer("What does failure code M005c mean?", rows, embed=None)
    assert extracts[0].passage == 2 and extracts[0].cited().endswith("Flow Control Valve [2].")


def test_a_sentence_that_only_repeats_the_question_is_not_an_answer():
    passage = ["anomaly_map — kpi_name: Delta Temperature; anomaly_type: High; primary_code: CS001; description: Calibration Drift"]
    question = "Which failure codes relate to a high Delta Temperature anomaly?"
    echo = grounding.check_sentences("The document mentions a high Delta Temperature anomaly.", passage, question=question)
    answer = grounding.check_sentences("The failure code is CS001, calibration drift.", passage, question=question)
    assert not echo[0].supported and answer[0].supported
    assert not grounding.check_sentences("The passage describes an anomaly.", passage, question="Which codes?")[0].supported


def test_only_passages_about_the_named_code_support_or_get_quoted():
    rows = ["meter — meter: actual power; description: the electrical power consumed by the chiller",
            "meter — meter: chiller efficiency; description: converting electrical energy into cooling capacity"]
    question = "What does the meter 'chiller efficiency' measure?"
    assert grounding.anchored_passages(question, rows) == {2}
    wrong = grounding.check_sentences("It measures the electrical power consumed by the chiller.", rows, question=question)
    assert not wrong[0].supported  # true of row 1, but row 1 is not about 'chiller efficiency'
    assert [e.passage for e in grounding.extract_answer(question, rows)] == [2]


def test_only_passages_that_match_the_question_support_a_sentence():
    rows = ["anomaly_map — kpi_name: Cooling Load; anomaly_type: High; primary_code: CS001; description: Calibration Drift",
            "anomaly_map — kpi_name: Cooling Load; anomaly_type: Low; primary_code: M006; description: Overheating"]
    question = "Which failure codes relate to a low Cooling Load anomaly?"
    assert grounding.on_topic_passages(question, rows) == {2}
    assert not grounding.check_sentences("The failure code is CS001, calibration drift.", rows, question=question)[0].supported
    assert grounding.check_sentences("The failure code is M006, overheating.", rows, question=question)[0].support.passage == 2


def test_a_paraphrase_is_supported_by_meaning_with_the_real_embedder():
    from models.retrieval.embedding import embed_texts

    passage = ["Bearing wear > Actions\nReplace the bearing at once when the vibration velocity exceeds the trip limit."]
    paraphrase = grounding.check_sentences("When vibration velocity goes above the trip limit, the bearing must be replaced immediately.", passage, embed=embed_texts)
    unrelated = grounding.check_sentences("The bearing should be painted blue for the inspection.", passage, embed=embed_texts)
    assert paraphrase[0].supported and paraphrase[0].support.semantic >= grounding.MIN_SEMANTIC
    assert not unrelated[0].supported

"""bench/diagnose_trial.py --explain: each re-diagnosis's wordings are read by the check and the
slot reader, and the explanation table counts them. A fake generator stands in for the language
model, so no model is loaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from models.diagnosis import FaultDiagnoser
from tests.models.test_explanation_check import PUMP_SENSORS, cavitation

_spec = importlib.util.spec_from_file_location("_explain_rows", Path(__file__).resolve().parents[2] / "bench" / "_explain_rows.py")
explain_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(explain_rows)


def diagnoser_answering(continuation: str) -> FaultDiagnoser:
    diagnoser = FaultDiagnoser()
    diagnoser.measures = PUMP_SENSORS
    diagnoser.explainer = explain_rows.RecordingGenerator(lambda messages, start: continuation)
    return diagnoser


def test_a_contradicting_model_summary_is_counted_raw_and_the_template_is_shown():
    diagnoser = diagnoser_answering('Suction pressure PRESS_SUC is high."}')
    row = explain_rows.explain_row(diagnoser, cavitation(), "P-201", model=True)
    assert row["model_raw"]["text"] == "Suction pressure PRESS_SUC is high."
    assert not row["model_raw"]["passes_check"] and row["model_raw"]["verdict"] == "contradicted"
    assert row["shown"]["source"] == "template" and row["shown"]["verdict"] == "faithful"
    assert row["shown"]["text"] == row["template"]["text"]


def test_a_faithful_model_summary_is_shown():
    diagnoser = diagnoser_answering('Suction pressure PRESS_SUC is low and the controller logged suction pressure below the NPSH margin."')
    row = explain_rows.explain_row(diagnoser, cavitation(), "P-201", model=True)
    assert row["shown"]["source"] == "model" and row["shown"]["passes_check"] and row["shown"]["verdict"] == "faithful"
    assert row["model_raw"]["passes_check"]


def test_without_the_model_only_the_template_is_read():
    row = explain_rows.explain_row(diagnoser_answering("unused"), cavitation(), "P-201", model=False)
    assert set(row) == {"template"} and row["template"]["verdict"] == "faithful"


def test_the_table_counts_each_wording():
    def read(verdict, passes, source="model"):
        return {"text": "", "source": source, "passes_check": passes, "verdict": verdict, "contradicted": [], "unsupported": []}

    rows = [
        {"explanations": {"template": read("faithful", False, "template"), "model_raw": read("contradicted", False),
                          "shown": read("faithful", False, "template")}},
        {"explanations": {"template": read("faithful", True, "template"), "model_raw": read("faithful", True), "shown": read("faithful", True)}},
        {"explanations": {"template": read("faithful", True, "template")}},
        {},  # a diagnosis that failed: no explanation
    ]
    table = explain_rows.summarise_explanations(rows)
    assert table["template"] == {"n": 3, "passes_check": 2, "faithful": 3, "contradictions": 0, "unsupported": 0, "agree": 2, "model_source": 0}
    assert table["model_raw"] == {"n": 2, "passes_check": 1, "faithful": 1, "contradictions": 1, "unsupported": 0, "agree": 2, "model_source": 2}
    assert table["shown"]["contradictions"] == 0 and table["shown"]["model_source"] == 1
    assert len(explain_rows.format_table(table)) == 4

"""Which raised alarms get a root-cause diagnosis: a detector's or a fault classifier's alarm says a
fault may be developing, so it is diagnosed; the RUL lead-time alert is a planning deadline on a
machine whose sensors may look normal, and a diagnosis of its window would be made up (the fresh
demo's P-101 RUL alert was diagnosed "cavitation", then "no known fault")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
from phm.analytics import diagnosis
from phm.condition import rul
from tests.conftest import make_plant

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "diagnosed"), [("pca-main", True), ("classifier:bearings", True), (rul.ALARM_SOURCE, False)])
def test_a_raise_is_diagnosed_unless_it_is_the_rul_lead_time_alert(source, diagnosed, monkeypatch, django_capture_on_commit_callbacks):
    pump, _ = make_plant()
    queued = []
    monkeypatch.setattr(diagnosis, "enqueue_diagnosis", lambda **kwargs: queued.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        transitions = evaluate_scores(equipment=pump, source=source, samples=[Sample(T0, 5.0)], policy=AlarmPolicy(threshold=1.0))
    assert transitions, "the alarm was raised"
    assert bool(queued) is diagnosed


def test_the_undiagnosed_source_is_the_rul_alert_source():
    assert rul.ALARM_SOURCE in diagnosis.UNDIAGNOSED_SOURCES

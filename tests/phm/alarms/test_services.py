"""Alarm state machine (ISA-18.2), chattering filters and the outbox written with each change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from phm.alarms import services
from phm.alarms.models import Alarm, AlarmPoint, AlarmState, AlarmTransition, OutboxMessage, WebhookDelivery, WebhookEndpoint
from phm.alarms.services import AlarmPolicy, Sample
from tests.conftest import ALL_DATABASES, make_plant

S = AlarmState
SOURCE = "detector:test"
POLICY = AlarmPolicy(threshold=1.0, deadband=0.2)


def run(pump, t0, scores, policy=POLICY, step_s=1.0, using="default"):
    samples = [Sample(t0 + timedelta(seconds=i * step_s), score) for i, score in enumerate(scores)]
    return services.evaluate_scores(equipment=pump, source=SOURCE, samples=samples, policy=policy, using=using)


def states(transitions):
    return [(t.from_state, t.to_state) for t in transitions]


@pytest.fixture
def pump(plant):
    return plant[0]


def test_score_above_threshold_raises_active_unacknowledged(pump, t0):
    transitions = run(pump, t0, [0.1, 0.5, 1.5])
    assert states(transitions) == [(S.NORMAL, S.ACTIVE_UNACK)]
    alarm = Alarm.objects.get()
    assert alarm.state == S.ACTIVE_UNACK and alarm.raised_at == t0 + timedelta(seconds=2) and alarm.score == 1.5


def test_full_lifecycle_raise_return_acknowledge(pump, t0, api_user):
    run(pump, t0, [2.0, 0.1])
    alarm = Alarm.objects.get()
    assert alarm.state == S.RTN_UNACK
    services.acknowledge(alarm_id=alarm.pk, user=api_user, comment="seen")
    alarm.refresh_from_db()
    assert alarm.state == S.NORMAL and alarm.closed_at is not None
    journal = list(AlarmTransition.objects.filter(alarm=alarm).values_list("from_state", "to_state", "actor"))
    assert journal == [(S.NORMAL, S.ACTIVE_UNACK, "system"), (S.ACTIVE_UNACK, S.RTN_UNACK, "system"), (S.RTN_UNACK, S.NORMAL, "operator")]


def test_acknowledge_then_return_closes_alarm(pump, t0, api_user):
    run(pump, t0, [2.0])
    alarm = Alarm.objects.get()
    services.acknowledge(alarm_id=alarm.pk, user=api_user)
    run(pump, t0 + timedelta(seconds=10), [0.0])
    alarm.refresh_from_db()
    assert alarm.state == S.NORMAL and alarm.cleared_at == t0 + timedelta(seconds=10)


def test_deadband_keeps_alarm_active_while_score_hovers_near_threshold(pump, t0):
    # Crossing back below 1.0 but staying above the clear level 0.8 must not chatter.
    transitions = run(pump, t0, [1.1, 0.9, 1.05, 0.85, 1.2, 0.95])
    assert states(transitions) == [(S.NORMAL, S.ACTIVE_UNACK)]


def test_on_delay_ignores_short_excursions(pump, t0):
    policy = AlarmPolicy(threshold=1.0, on_delay_s=3)
    assert run(pump, t0, [2, 2, 0, 2, 2, 0], policy=policy) == []
    transitions = run(pump, t0 + timedelta(seconds=100), [2, 2, 2, 2], policy=policy)
    assert states(transitions) == [(S.NORMAL, S.ACTIVE_UNACK)]
    assert Alarm.objects.get().raised_at == t0 + timedelta(seconds=103)


def test_off_delay_holds_alarm_through_short_dips(pump, t0):
    policy = AlarmPolicy(threshold=1.0, off_delay_s=3)
    transitions = run(pump, t0, [2, 0, 0, 2, 0, 0, 0, 0], policy=policy)
    assert states(transitions) == [(S.NORMAL, S.ACTIVE_UNACK), (S.ACTIVE_UNACK, S.RTN_UNACK)]
    assert Alarm.objects.get().cleared_at == t0 + timedelta(seconds=7)


def test_filter_state_persists_between_batches(pump, t0):
    policy = AlarmPolicy(threshold=1.0, on_delay_s=2)
    assert run(pump, t0, [2, 2], policy=policy) == []  # 1 s above: not yet
    transitions = run(pump, t0 + timedelta(seconds=2), [2], policy=policy)
    assert states(transitions) == [(S.NORMAL, S.ACTIVE_UNACK)]


def test_replayed_samples_are_not_evaluated_twice(pump, t0):
    run(pump, t0, [2.0, 0.0])
    assert run(pump, t0, [2.0, 0.0]) == []
    assert AlarmTransition.objects.count() == 2


def test_reactivation_before_acknowledge_returns_to_active_unacknowledged(pump, t0):
    transitions = run(pump, t0, [2.0, 0.0, 3.0])
    assert states(transitions)[-1] == (S.RTN_UNACK, S.ACTIVE_UNACK)
    assert Alarm.objects.count() == 1


def test_new_alarm_after_previous_closed(pump, t0, api_user):
    run(pump, t0, [2.0, 0.0])
    services.acknowledge(alarm_id=Alarm.objects.get().pk, user=api_user)
    run(pump, t0 + timedelta(seconds=10), [2.0])
    assert Alarm.objects.filter(state=S.NORMAL).count() == 1
    assert Alarm.objects.filter(state=S.ACTIVE_UNACK).count() == 1


def test_severity_bands_follow_criticality_and_excess():
    assert services.severity_for(score=1.0, threshold=1.0, criticality="C") == 1
    assert services.severity_for(score=1.0, threshold=1.0, criticality="B") == 251
    assert services.severity_for(score=5.0, threshold=1.0, criticality="A") == 1000
    assert 500 < services.severity_for(score=3.0, threshold=1.0, criticality="B") < 751


def test_acknowledging_a_normal_alarm_is_illegal_and_changes_nothing(pump, t0, api_user):
    run(pump, t0, [2.0, 0.0])
    alarm = Alarm.objects.get()
    services.acknowledge(alarm_id=alarm.pk, user=api_user)
    before = AlarmTransition.objects.count()
    with pytest.raises(services.IllegalTransition, match="only an unacknowledged alarm"):
        services.acknowledge(alarm_id=alarm.pk, user=api_user)
    assert AlarmTransition.objects.count() == before


def test_shelve_hides_alarm_and_unshelve_reannunciates_active_condition(pump, t0, api_user):
    run(pump, t0, [2.0])
    alarm = Alarm.objects.get()
    services.shelve(alarm_id=alarm.pk, user=api_user, duration=timedelta(hours=1), comment="sensor being replaced")
    alarm.refresh_from_db()
    assert alarm.state == S.SHELVED and alarm.shelved_from_state == S.ACTIVE_UNACK
    services.unshelve(alarm_id=alarm.pk, user=api_user, comment="done")
    alarm.refresh_from_db()
    assert alarm.state == S.ACTIVE_UNACK and alarm.shelved_until is None


def test_shelve_expiry_returns_cleared_alarm_to_normal(pump, t0, api_user):
    run(pump, t0, [2.0])
    alarm = Alarm.objects.get()
    services.shelve(alarm_id=alarm.pk, user=api_user, duration=timedelta(minutes=5), comment="known issue", now=t0)
    run(pump, t0 + timedelta(seconds=60), [0.0])  # returns to normal while shelved: still shelved
    alarm.refresh_from_db()
    assert alarm.state == S.SHELVED and not alarm.process_active
    assert services.expire_shelves(now=t0 + timedelta(minutes=6)) == 1
    alarm.refresh_from_db()
    assert alarm.state == S.NORMAL
    last = AlarmTransition.objects.filter(alarm=alarm).last()
    assert (last.from_state, last.to_state, last.actor, last.comment) == (S.SHELVED, S.NORMAL, "system", "shelve expired")


def test_unshelving_an_expired_shelve_is_refused(pump, t0, api_user):
    run(pump, t0, [2.0])
    alarm = Alarm.objects.get()
    services.shelve(alarm_id=alarm.pk, user=api_user, duration=timedelta(minutes=5), comment="x", now=t0)
    with pytest.raises(services.IllegalTransition, match="expired"):
        services.unshelve(alarm_id=alarm.pk, user=api_user, now=t0 + timedelta(minutes=10))
    alarm.refresh_from_db()
    assert alarm.state == S.SHELVED


@pytest.mark.parametrize("duration", [timedelta(0), timedelta(seconds=-30), timedelta(days=30)])
def test_shelve_with_bad_duration_is_refused(pump, t0, api_user, duration):
    run(pump, t0, [2.0])
    with pytest.raises(services.InvalidRequest):
        services.shelve(alarm_id=Alarm.objects.get().pk, user=api_user, duration=duration, comment="x")
    assert Alarm.objects.get().state == S.ACTIVE_UNACK


def test_suppressed_point_records_alarm_without_annunciating_it(pump, t0):
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x")
    services.set_point_flags(equipment=pump, source=SOURCE, suppressed_by_design=True)
    run(pump, t0, [2.0])
    assert Alarm.objects.get().state == S.SUPPRESSED
    assert OutboxMessage.objects.count() == 0
    services.set_point_flags(equipment=pump, source=SOURCE, suppressed_by_design=False)
    assert Alarm.objects.get().state == S.ACTIVE_UNACK
    assert list(OutboxMessage.objects.values_list("event_type", flat=True)) == ["alarm.unsuppressed"]


def test_out_of_service_takes_open_alarm_out_and_back(pump, t0, api_user):
    run(pump, t0, [2.0])
    services.set_point_flags(equipment=pump, source=SOURCE, out_of_service=True, user=api_user, comment="maintenance")
    alarm = Alarm.objects.get()
    assert alarm.state == S.OUT_OF_SERVICE
    run(pump, t0 + timedelta(seconds=5), [0.0])
    services.set_point_flags(equipment=pump, source=SOURCE, out_of_service=False, user=api_user)
    alarm.refresh_from_db()
    assert alarm.state == S.NORMAL


def test_each_annunciated_transition_writes_outbox_and_delivery_in_same_transaction(pump, t0, api_user):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x")
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/only-raised", events=["alarm.raised"])
    run(pump, t0, [2.0, 0.0])
    services.acknowledge(alarm_id=Alarm.objects.get().pk, user=api_user)
    events = list(OutboxMessage.objects.values_list("event_type", flat=True))
    assert events == ["alarm.raised", "alarm.returned_to_normal", "alarm.cleared"]
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 3
    assert WebhookDelivery.objects.exclude(endpoint=endpoint).count() == 1
    payload = OutboxMessage.objects.first().payload
    assert payload["type"] == "alarm.raised"
    assert payload["data"]["equipment"]["path"] == "north/water/ps1/P-101"
    assert payload["data"]["state"] == S.ACTIVE_UNACK and payload["data"]["severity_band"] == "medium"


def test_failed_transition_rolls_back_its_outbox_message(pump, t0, api_user):
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x")
    run(pump, t0, [2.0])
    alarm = Alarm.objects.get()
    before = OutboxMessage.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.acknowledge(alarm_id=alarm.pk, user=api_user)
        raise RuntimeError("crash after the transition, before commit")
    assert OutboxMessage.objects.count() == before
    alarm.refresh_from_db()
    assert alarm.state == S.ACTIVE_UNACK


@pytest.mark.django_db(databases=ALL_DATABASES)
def test_database_refuses_second_open_alarm_for_same_point(db_alias, t0):
    pump, _ = make_plant(using=db_alias)
    point = AlarmPoint.objects.using(db_alias).create(equipment=pump, source=SOURCE)
    fields = dict(point=point, equipment=pump, source=SOURCE, severity=300, score=2, peak_score=2, message="m", raised_at=t0)
    Alarm.objects.using(db_alias).create(**fields)
    Alarm.objects.using(db_alias).create(**{**fields, "state": S.NORMAL})  # closed ones may repeat
    with pytest.raises(IntegrityError), transaction.atomic(using=db_alias):
        Alarm.objects.using(db_alias).create(**{**fields, "state": S.ACTIVE_ACK})


def test_callers_word_their_alarm_text_and_it_follows_the_score_while_held(pump, t0):
    """A caller whose score is not an anomaly score (RUL, classifier) says what it means; the text
    follows each held sample so the console never shows a stale figure."""
    def describe(sample):
        return f"P-101: wording for {sample.score:g}"

    samples = [Sample(t0, 2.0), Sample(t0 + timedelta(seconds=1), 3.0)]
    services.evaluate_scores(equipment=pump, source=SOURCE, samples=samples[:1], policy=POLICY, describe=describe)
    alarm = Alarm.objects.get()
    assert alarm.message == "P-101: wording for 2"
    assert OutboxMessage.objects.get(alarm=alarm).payload["data"]["message"] == "P-101: wording for 2"
    services.evaluate_scores(equipment=pump, source=SOURCE, samples=samples[1:], policy=POLICY, describe=describe)
    alarm.refresh_from_db()
    assert alarm.message == "P-101: wording for 3" and alarm.score == 3.0


def test_default_alarm_text_is_unchanged_and_not_rewritten_while_held(pump, t0):
    run(pump, t0, [2.0, 3.0])
    assert Alarm.objects.get().message == "detector:test: anomaly score 2 above threshold 1 on P-101"

"""Backtests through the API and the pages, for every role: anonymous, a user in no role group,
operator, engineer, admin. Reading needs a role (operator and up: roles fail closed, a user in
no role group gets nothing); starting a backtest needs the engineer (or admin) role."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from phm.backtests import services
from phm.backtests.models import BacktestRun
from tests.phm.backtests.helpers import HISTORY_END, TRAIN_END, pump_history  # noqa: F401 (fixture)

ROLES = ["nogroup", "operator", "engineer", "admin"]
MAY_START = {"nogroup": False, "operator": False, "engineer": True, "admin": True}
READERS = ["operator", "engineer", "admin"]


def user_in(role: str) -> User:
    if role == "admin":
        return User.objects.create_superuser("admin1", password="pw-admin-1")
    user = User.objects.create_user(f"{role}1", password=f"pw-{role}-1")
    if role != "nogroup":
        user.groups.add(Group.objects.get(name=role))
    return user


def api_client_for(role: str | None) -> APIClient:
    client = APIClient()
    if role is not None:
        token, _ = Token.objects.get_or_create(user=user_in(role))
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def page_client_for(role: str | None) -> Client:
    client = Client()
    if role is not None:
        client.force_login(user_in(role))
    return client


@pytest.fixture
def finished_run(pump_history):
    run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False, enqueue=False)
    return services.run_backtest(run_id=run.pk)


def body() -> dict:
    return {"start": TRAIN_END.isoformat(), "end": HISTORY_END.isoformat(), "equipment": ["P-201"], "diagnose": False}


@pytest.mark.parametrize("role", ROLES)
def test_post_starts_a_backtest_for_engineers_only(role, pump_history, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "_enqueue", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(role).post("/api/v1/backtests/", body(), format="json")
    if MAY_START[role]:
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "queued" and response.json()["equipment"] == ["P-201"]
        assert sent == [response.json()["id"]]
    else:
        assert response.status_code == 403 and ("engineer" in response.json()["error"] or "no role group" in response.json()["error"])
        assert not BacktestRun.objects.exists() and sent == []


def test_anonymous_api_calls_are_refused(finished_run):
    client = api_client_for(None)
    assert client.post("/api/v1/backtests/", body(), format="json").status_code == 401
    assert client.get("/api/v1/backtests/").status_code == 401
    assert client.get(f"/api/v1/backtests/{finished_run.pk}/report/").status_code == 401


def test_a_user_in_no_role_group_reads_nothing(finished_run):
    api = api_client_for("nogroup")
    for url in ("/api/v1/backtests/", f"/api/v1/backtests/{finished_run.pk}/", f"/api/v1/backtests/{finished_run.pk}/report/"):
        response = api.get(url)
        assert response.status_code == 403 and "no role group" in response.json()["error"], url
    pages = Client()
    pages.force_login(User.objects.get(username="nogroup1"))
    for url in ("/backtests/", f"/backtests/{finished_run.pk}/"):
        assert pages.get(url).status_code == 403, url


@pytest.mark.parametrize("role", READERS)
def test_every_role_reads_list_detail_report_and_alarms(role, finished_run):
    client = api_client_for(role)
    listed = client.get("/api/v1/backtests/").json()
    assert [r["id"] for r in listed["results"]] == [finished_run.pk]
    detail = client.get(f"/api/v1/backtests/{finished_run.pk}/").json()
    assert detail["status"] == "succeeded" and detail["progress"][-1]["stage"] == "done"
    report = client.get(f"/api/v1/backtests/{finished_run.pk}/report/").json()
    assert report["detection"]["faults"] == 1 and report["detection"]["detected"] == 1
    alarms = client.get(f"/api/v1/backtests/{finished_run.pk}/alarms/").json()["results"]
    assert any(a["fault_kind"] == "cavitation" for a in alarms)


def test_bad_bodies_are_refused_with_the_field(pump_history):
    client = api_client_for("engineer")
    wrong = client.post("/api/v1/backtests/", {**body(), "end": TRAIN_END.isoformat()}, format="json")
    assert wrong.status_code == 400 and "end" in str(wrong.json())
    unknown = client.post("/api/v1/backtests/", {**body(), "equipment": ["X-999"]}, format="json")
    assert unknown.status_code == 400 and "X-999" in str(unknown.json())
    negative = client.post("/api/v1/backtests/", {**body(), "rediagnose_after_s": [-5]}, format="json")
    assert negative.status_code == 400


def test_report_of_an_unfinished_run_is_a_conflict(pump_history):
    run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False, enqueue=False)
    response = api_client_for("operator").get(f"/api/v1/backtests/{run.pk}/report/")
    assert response.status_code == 409 and "queued" in response.json()["error"]


@pytest.mark.parametrize("role", READERS)
def test_pages_show_the_report_and_plots_to_every_role(role, finished_run):
    client = page_client_for(role)
    listing = client.get("/backtests/")
    assert listing.status_code == 200 and f"#{finished_run.pk}".encode() in listing.content
    assert (b'data-testid="start-backtest"' in listing.content) == MAY_START[role]
    page = client.get(f"/backtests/{finished_run.pk}/")
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="report"' in text and "faults detected before they end: 1/1" in text
    assert 'data-chart="pca-main"' in text and "plotly" in text.lower() and "cavitation" in text
    assert "Backtests" in client.get("/").content.decode()  # linked from the dashboard's menu


@pytest.mark.parametrize("role", ROLES)
def test_the_start_form_needs_the_engineer_role(role, pump_history, monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda run_id: None)
    response = page_client_for(role).post("/backtests/start/", {"start": "2026-03-02T09:00", "end": "2026-03-02T10:00", "equipment": ["P-201"]})
    if MAY_START[role]:
        run = BacktestRun.objects.get()
        assert response.status_code == 302 and response["Location"] == f"/backtests/{run.pk}/"
        assert run.start == TRAIN_END and not run.diagnose
    else:
        assert response.status_code == 403 and not BacktestRun.objects.exists()


def test_anonymous_pages_redirect_to_login(finished_run):
    client = page_client_for(None)
    for url in ("/backtests/", f"/backtests/{finished_run.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post("/backtests/start/", {}).status_code == 302 and not BacktestRun.objects.exclude(pk=finished_run.pk).exists()

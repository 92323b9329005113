"""phm.api.permissions.RolePermission on real API views: reads for every role, an operator's own
actions, engineer for the rest, and nothing for users in no role group."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.urls import resolve
from rest_framework.test import APIRequestFactory, force_authenticate

from phm.api.permissions import RolePermission


def _allowed(user, method: str, path: str) -> bool:
    """Resolve ``path`` to its real view and ask the permission as DRF does after routing."""
    factory = APIRequestFactory()
    django_request = getattr(factory, method.lower())(path)
    force_authenticate(django_request, user=user)
    match = resolve(path)
    django_request.resolver_match = match
    view_class = match.func.cls
    initkwargs = getattr(match.func, "initkwargs", {})
    view = view_class(**initkwargs)
    actions = getattr(match.func, "actions", None)
    if actions:
        view.action_map = actions
        view.action = actions.get(method.lower())
    view.format_kwarg = None
    view.args, view.kwargs = (), match.kwargs
    request = view.initialize_request(django_request, **match.kwargs)
    view.request = request
    if actions:
        view.action = actions.get(method.lower())
    return RolePermission().has_permission(request, view)


def test_anonymous_is_refused(db):
    assert not _allowed(AnonymousUser(), "GET", "/api/v1/alarms/")


def test_operator_reads_and_acknowledges(operator_user):
    assert _allowed(operator_user, "GET", "/api/v1/detectors/")
    assert _allowed(operator_user, "POST", "/api/v1/alarms/1/ack/")
    assert _allowed(operator_user, "POST", "/api/v1/alarms/1/shelve/")
    assert _allowed(operator_user, "POST", "/api/v1/assistant/ask/stream")


def test_operator_cannot_configure(operator_user):
    assert not _allowed(operator_user, "POST", "/api/v1/detectors/")
    assert not _allowed(operator_user, "POST", "/api/v1/detectors/1/train/")
    assert not _allowed(operator_user, "POST", "/api/v1/connectors/")
    assert not _allowed(operator_user, "DELETE", "/api/v1/assistant/documents/1")


def test_engineer_configures(engineer_user):
    assert _allowed(engineer_user, "POST", "/api/v1/detectors/1/train/")
    assert _allowed(engineer_user, "POST", "/api/v1/connectors/")


def test_user_in_no_group_may_do_nothing(ungrouped_user):
    """Roles fail closed (issue 19): a token whose user is in no role group reads and writes nothing."""
    assert not _allowed(ungrouped_user, "GET", "/api/v1/alarms/")
    assert not _allowed(ungrouped_user, "POST", "/api/v1/detectors/")
    assert not _allowed(ungrouped_user, "POST", "/api/v1/readings")

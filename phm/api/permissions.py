"""Role check for every API call (DRF permission class).

Put it in ``REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] = ["phm.api.permissions.RolePermission"]``.

It fails closed:

- Anonymous callers are refused (as with ``IsAuthenticated``).
- A signed-in user (or token) in no role group is refused everything: put ingestion accounts in
  the ``engineer`` group (writing readings and logs is configuration-level access).
- Reading (GET, HEAD, OPTIONS) needs the operator role, except ``ENGINEER_READS``.
- Writing needs the engineer role, except what an operator does on the job: acknowledge, shelve
  and unshelve alarms, ask the assistant, delete their own conversations. A new endpoint is
  therefore engineer-only for writes until it is listed here.
- Superusers count as admin. The README's "Pages and roles" matrix describes these rules and
  ``tests/phm/security/test_role_matrix.py`` checks every route against it.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from phm.dashboard import roles

#: (viewset basename, action) pairs an operator may call with an unsafe method.
OPERATOR_ACTIONS: frozenset[tuple[str, str]] = frozenset({
    ("alarm", "ack"),
    ("alarm", "shelve"),
    ("alarm", "unshelve"),
    ("assistant-conversation", "destroy"),
})
#: (viewset basename, action) pairs that even reading needs the engineer role for: webhook
#: deliveries hold the first bytes of each receiver's answer.
ENGINEER_READS: frozenset[tuple[str, str]] = frozenset({
    ("webhook", "deliveries"),
    # RUL model versions and their training jobs are model configuration (engineer's work);
    # operators read each equipment's RUL at /equipment/<tag>/rul.
    ("rul-model", "list"), ("rul-model", "retrieve"), ("rul-job", "list"), ("rul-job", "retrieve"),
})
#: URL names of plain API views an operator may call with an unsafe method.
OPERATOR_URL_NAMES: frozenset[str] = frozenset({"assistant-ask", "assistant-ask-stream"})


def operator_may(request, view) -> bool:
    """Whether this unsafe call is one of the operator's own actions."""
    basename, action = getattr(view, "basename", None), getattr(view, "action", None)
    if basename is not None and (basename, action) in OPERATOR_ACTIONS:
        return True
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name in OPERATOR_URL_NAMES


class RolePermission(BasePermission):
    message = "this call needs the engineer role"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        role = roles.group_role(user)
        if role is None:  # no role group: nothing (fail closed)
            self.message = roles.NO_ROLE_MESSAGE
            return False
        if role in (roles.ENGINEER, roles.ADMIN):
            return True
        if request.method in SAFE_METHODS:
            return (getattr(view, "basename", None), getattr(view, "action", None)) not in ENGINEER_READS
        return operator_may(request, view)

"""Role check for every API call (DRF permission class).

Put it in ``REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] = ["phm.api.permissions.RolePermission"]``.

- Anonymous callers are refused (as with ``IsAuthenticated``).
- Reading (GET, HEAD, OPTIONS) is open to every signed-in user.
- Writing needs the engineer role, except what an operator does on the job: acknowledge, shelve
  and unshelve alarms, ask the assistant, delete their own conversations.
- Superusers pass. A user in no role group keeps the access they had before roles existed (any
  call), so ingestion tokens and scripts created earlier keep working; put such users in a group
  to restrict them.
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
ENGINEER_READS: frozenset[tuple[str, str]] = frozenset({("webhook", "deliveries")})
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
        if request.method in SAFE_METHODS:
            if (getattr(view, "basename", None), getattr(view, "action", None)) in ENGINEER_READS:
                return role in (roles.ENGINEER, roles.ADMIN)
            return True
        if role is None:  # no role group: access as before roles existed
            return True
        if role in (roles.ENGINEER, roles.ADMIN):
            return True
        return operator_may(request, view)

"""Roles of the platform as Django groups, and the checks pages use.

``operator`` views the plant and acknowledges / shelves alarms; ``engineer`` also configures
detectors, starts training and manages connectors and documents; ``admin`` may do everything.
Superusers count as admin. A user in several groups has the highest of their roles.

A signed-in user in none of the groups is treated as an operator on the pages (they can look
and acknowledge, not configure); the API keeps its older rule for them (see
``phm.api.permissions``), so tokens issued before roles existed keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

OPERATOR = "operator"
ENGINEER = "engineer"
ADMIN = "admin"
#: Lowest to highest; each role may do what the roles before it may.
ROLES: tuple[str, ...] = (OPERATOR, ENGINEER, ADMIN)
_RANK = {name: rank for rank, name in enumerate(ROLES)}


def group_role(user) -> str | None:
    """The highest role from the user's groups (admin for superusers); None when in no role group."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    # Cached on the user object: a page asks several times per request (menu, checks).
    cached = getattr(user, "_phm_group_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    role = max(names, key=_RANK.__getitem__) if names else None
    user._phm_group_role = role
    return role


def page_role(user) -> str | None:
    """Role for the web pages: a signed-in user without a role group is an operator."""
    if not getattr(user, "is_authenticated", False):
        return None
    return group_role(user) or OPERATOR


def has_role(user, role: str) -> bool:
    """Whether ``user`` may act as ``role`` on the pages (admin ⊇ engineer ⊇ operator)."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    current = page_role(user)
    return current is not None and _RANK[current] >= _RANK[role]


def role_required(role: str) -> Callable:
    """View decorator: anonymous users go to the login page, signed-in users below ``role`` get 403."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"this page needs the {role} role")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator

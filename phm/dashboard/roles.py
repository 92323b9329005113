"""Roles of the platform as Django groups, and the checks pages use.

``operator`` views the plant and acknowledges / shelves alarms; ``engineer`` also configures
detectors, starts training and manages connectors and documents; ``admin`` may do everything.
Superusers count as admin. A user in several groups has the highest of their roles.

Roles fail closed: a signed-in user in none of the groups may do nothing, neither on the pages
(``phm.dashboard.middleware``) nor in the API (``phm.api.permissions``), until an administrator
puts them in a group. The 403 answer says so.
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


#: Why a signed-in user without a role group is refused (pages and API say the same).
NO_ROLE_MESSAGE = "your account is in no role group (operator, engineer, admin): ask an administrator to add you to one"


def page_role(user) -> str | None:
    """Role for the web pages: the group role; None (no access) for anonymous users and for
    signed-in users in no role group."""
    return group_role(user)


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
                raise PermissionDenied(NO_ROLE_MESSAGE if page_role(request.user) is None else f"this page needs the {role} role")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator

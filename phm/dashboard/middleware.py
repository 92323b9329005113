"""The role check for every web page, in one table (the API has its own: ``phm.api.permissions``).

Add ``"phm.dashboard.middleware.PageRoleMiddleware"`` to MIDDLEWARE after AuthenticationMiddleware.
Each page URL name has a rule ``(role to read, role to change)``: reading is GET / HEAD / OPTIONS,
changing is every other method. It fails closed:

- a page without a rule is refused (403 naming it), so a new page needs a line here (and the
  role-matrix test, ``tests/phm/security/test_role_matrix.py``, fails until it has one);
- anonymous users are sent to the login page, signed-in users in no role group get 403 (they may
  do nothing until an administrator puts them in a group), users below the rule's role get 403.

The admin site (staff accounts) and the API under ``/api/`` (token or session; DRF permission
class) check access themselves and are not in this table. Views keep their own decorators as a
second line; this table is what the README's "Pages and roles" matrix describes.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from phm.dashboard import roles
from phm.dashboard.roles import ENGINEER, OPERATOR

#: No sign-in needed.
PUBLIC = "public"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Page URL name -> (role to read, role to change). Keep in step with README "Pages and roles".
PAGE_RULES: dict[str, tuple[str, str]] = {
    "login": (PUBLIC, PUBLIC),
    "logout": (PUBLIC, PUBLIC),
    "dashboard:plotly-js": (PUBLIC, PUBLIC),  # the charting library, a static script
    "dashboard:overview": (OPERATOR, OPERATOR),
    "dashboard:equipment": (OPERATOR, OPERATOR),
    "dashboard:console": (OPERATOR, OPERATOR),
    "dashboard:console-rows": (OPERATOR, OPERATOR),
    "dashboard:journal": (OPERATOR, OPERATOR),
    "dashboard:chat": (OPERATOR, OPERATOR),
    "dashboard:media": (OPERATOR, OPERATOR),  # raw historian uploads (uploads/...) need engineer: the view checks
    "dashboard:models": (ENGINEER, ENGINEER),
    "dashboard:jobs-rows": (ENGINEER, ENGINEER),
    "dashboard:detector-action": (ENGINEER, ENGINEER),
    "dashboard:detector-create": (ENGINEER, ENGINEER),
    "dashboard:connectors": (ENGINEER, ENGINEER),
    "alarms:list": (OPERATOR, OPERATOR),
    "alarms:detail": (OPERATOR, OPERATOR),
    "alarms:action": (OPERATOR, OPERATOR),  # acknowledge / shelve / unshelve: the operator's job
    "analytics:diagnosis": (OPERATOR, OPERATOR),
    "analytics:diagnosis-feedback": (ENGINEER, ENGINEER),
    "analytics:passage": (OPERATOR, OPERATOR),
    "assistant:documents": (ENGINEER, ENGINEER),
    "assistant:delete-document": (ENGINEER, ENGINEER),
    "backtests:list": (OPERATOR, OPERATOR),
    "backtests:detail": (OPERATOR, OPERATOR),
    "backtests:start": (ENGINEER, ENGINEER),  # a replay costs CPU; reading its report does not
    "condition:capture-upload": (ENGINEER, ENGINEER),  # a new vibration capture (POST only)
}


def handled_elsewhere(request) -> bool:
    """The API (DRF permission class) and the admin site (staff check) guard themselves."""
    match = request.resolver_match
    return request.path_info.startswith("/api/") or (match is not None and "admin" in match.namespaces)


def required_role(request) -> str:
    """The role this request needs; PermissionDenied for a page without a rule."""
    name = request.resolver_match.view_name
    rule = PAGE_RULES.get(name)
    if rule is None:
        raise PermissionDenied(f"page {name!r} has no access rule (phm/dashboard/middleware.py PAGE_RULES)")
    return rule[0] if request.method in SAFE_METHODS else rule[1]


class PageRoleMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if handled_elsewhere(request):
            return None
        role = required_role(request)
        if role == PUBLIC:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if roles.page_role(user) is None:
            raise PermissionDenied(roles.NO_ROLE_MESSAGE)
        if not roles.has_role(user, role):
            raise PermissionDenied(f"this {'page' if request.method in SAFE_METHODS else 'action'} needs the {role} role")
        return None

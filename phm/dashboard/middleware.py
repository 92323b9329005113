"""Role checks for the pages of other apps, which only ask for a login.

Add ``"phm.dashboard.middleware.PageRoleMiddleware"`` to MIDDLEWARE after
AuthenticationMiddleware. Pages of this app check roles themselves (``roles.role_required``);
this covers changes made through the other apps' forms: uploading or deleting knowledge-base
documents needs the engineer role. As in the API permission, a user in no role group keeps the
access those pages gave before roles existed (any signed-in user); put users in a group to restrict them.
"""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied

from phm.dashboard import roles

#: (path pattern, methods, role): the first matching rule applies; no match, no extra check.
PAGE_RULES: tuple[tuple[re.Pattern[str], frozenset[str], str], ...] = (
    (re.compile(r"^/assistant/documents/"), frozenset({"POST", "PUT", "PATCH", "DELETE"}), roles.ENGINEER),
)


class PageRoleMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and roles.group_role(user) is not None:
            for pattern, methods, role in PAGE_RULES:
                if request.method in methods and pattern.match(request.path):
                    if not roles.has_role(user, role):
                        raise PermissionDenied(f"this action needs the {role} role")
                    break
        return self.get_response(request)

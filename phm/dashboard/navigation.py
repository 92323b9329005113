"""Where a form may send the browser next.

Forms carry a ``next`` field so an action returns to the page it came from. The value comes from
the request, so it is only followed when it is a path on this site: an absolute URL to another
host (``https://evil.example/``), a scheme-relative one (``//evil.example``), a browser quirk
(``/\\evil.example``), ``javascript:`` or a bare word (``foo``, which ``redirect()`` took for a
URL name and failed on with a 500) all fall back to the page the view names.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme


def is_local_path(target: str, request: HttpRequest) -> bool:
    """Whether ``target`` is an absolute path on this site (no scheme, no host)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    return url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())


def safe_redirect(request: HttpRequest, target: str, *, fallback: str) -> HttpResponseRedirect:
    """Redirect to ``target`` when it is a local path, else to ``fallback`` (a resolved URL)."""
    return HttpResponseRedirect(target if target and is_local_path(target, request) else fallback)

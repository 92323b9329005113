"""API rate limits: per token (or per signed-in user for session calls) and per address for
anonymous calls. Rates are read from settings on every call, so they can be tuned (and tested)
without a restart of the class machinery: ``PHM_API_RATE`` (default ``1200/min``) and
``PHM_API_ANON_RATE`` (default ``60/min``), DRF's ``<number>/<sec|min|hour|day>`` form; ``off``
disables one. Counters live in Django's cache (per process with the default local-memory cache;
set ``PHM_CACHE_URL=redis://...`` to share them between gunicorn workers)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    setting = ""

    def get_rate(self) -> str | None:
        rate = str(getattr(settings, self.setting, "") or "").strip().lower()
        return None if rate in ("", "off", "none", "0") else rate


class TokenRateThrottle(_SettingsRateThrottle):
    """Signed-in calls, counted per API token (two tokens of one user are two budgets)."""

    scope = "token"
    setting = "PHM_API_RATE"

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        key = getattr(request.auth, "key", None)
        ident = f"token:{key}" if key else f"user:{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonymousRateThrottle(_SettingsRateThrottle):
    """Calls without credentials (all refused with 401), counted per address: guessing tokens is slow."""

    scope = "anonymous"
    setting = "PHM_API_ANON_RATE"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

"""Login throttling with back-off, on top of django-axes.

Axes counts failed logins per username and per client address (``AXES_LOCKOUT_PARAMETERS``:
either one reaching ``AXES_FAILURE_LIMIT`` locks, so a password sprayed over many accounts from
one address is stopped as well as one account attacked from many). While locked, even the right
password is refused (429). The lock lasts ``PHM_LOGIN_LOCKOUT_BASE_S`` at the limit and doubles
with every further failure, up to ``PHM_LOGIN_LOCKOUT_MAX_S``; an admin can unlock at once with
``manage.py axes_reset_username <name>`` (or ``axes_reset_ip``).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


def lockout_cooloff(*, failures: int) -> timedelta:
    """How long a lock lasts after ``failures`` failed attempts: the base at the limit, doubling
    for each failure past it, capped."""
    extra = max(0, failures - settings.AXES_FAILURE_LIMIT)
    seconds = settings.PHM_LOGIN_LOCKOUT_BASE_S * 2 ** min(extra, 30)
    return timedelta(seconds=min(seconds, settings.PHM_LOGIN_LOCKOUT_MAX_S))


def _failures_for(request) -> int:
    from axes.models import AccessAttempt
    from django.db.models import Max, Q

    username = request.POST.get(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username"), "") if request.method == "POST" else ""
    address = getattr(request, "axes_ip_address", None)
    match = Q(pk__in=[])
    if username:
        match |= Q(username=username)
    if address:
        match |= Q(ip_address=address)
    return AccessAttempt.objects.filter(match).aggregate(most=Max("failures_since_start"))["most"] or 0


def cooloff_for_request(request) -> timedelta:
    """``AXES_COOLOFF_TIME``: the back-off for the failures recorded against this request's
    username or address (the base when there is no request, e.g. housekeeping)."""
    if request is None:
        return lockout_cooloff(failures=0)
    return lockout_cooloff(failures=_failures_for(request))


def client_address(request) -> str:
    """``AXES_CLIENT_IP_CALLABLE``: the client's address. Behind ``PHM_PROXY_COUNT`` reverse
    proxies that append to X-Forwarded-For, the entry that many places from the right (the
    address the outermost proxy saw); otherwise REMOTE_ADDR. Entries further left are set by the
    client and cannot be trusted."""
    proxies = settings.PHM_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies > 0 and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")

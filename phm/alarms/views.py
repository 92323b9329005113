"""Operator alarm page: open alarms by severity, with acknowledge / shelve / unshelve and the
journal of each; the actions call the same services as the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from phm.alarms import selectors, services
from phm.alarms.models import Alarm
from phm.dashboard.navigation import safe_redirect

SHELVE_CHOICES_MIN = (15, 60, 240, 480)


@login_required
@require_GET
def alarm_list(request: HttpRequest) -> HttpResponse:
    alarms = selectors.alarms(open_only=request.GET.get("all") != "1").order_by("-severity", "-raised_at")[:500]
    return render(request, "alarms/list.html", {"alarms": alarms, "shelve_choices": SHELVE_CHOICES_MIN, "show_all": request.GET.get("all") == "1"})


@login_required
@require_GET
def alarm_detail(request: HttpRequest, alarm_id: int) -> HttpResponse:
    alarm = get_object_or_404(selectors.alarms(), pk=alarm_id)
    return render(request, "alarms/detail.html", {"alarm": alarm, "journal": selectors.journal(alarm=alarm), "shelve_choices": SHELVE_CHOICES_MIN})


@login_required
@require_POST
def alarm_action(request: HttpRequest, alarm_id: int, action: str) -> HttpResponse:
    comment = request.POST.get("comment", "").strip()
    try:
        if action == "ack":
            services.acknowledge(alarm_id=alarm_id, user=request.user, comment=comment)
        elif action == "shelve":
            duration = services.shelve_duration(request.POST.get("minutes", "0"), unit="minutes")
            services.shelve(alarm_id=alarm_id, user=request.user, duration=duration, comment=comment)
        elif action == "unshelve":
            services.unshelve(alarm_id=alarm_id, user=request.user, comment=comment)
        else:
            raise Http404(f"unknown action {action!r}")
        messages.success(request, f"alarm {alarm_id}: {action} done")
    except Alarm.DoesNotExist:
        raise Http404(f"alarm {alarm_id} does not exist") from None
    except (services.AlarmError, ValueError) as exc:
        messages.error(request, f"alarm {alarm_id}: {exc}")
    return safe_redirect(request, request.POST.get("next", ""), fallback=reverse("alarms:list"))

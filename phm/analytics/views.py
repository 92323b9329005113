"""Diagnosis pages: one diagnosis with its evidence, similar cases and cited actions (operator),
and the engineer's confirm / correct form; the form calls the same service as the API."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from phm.analytics import diagnosis as services
from phm.analytics.models import Diagnosis
from phm.dashboard import selectors
from phm.dashboard.navigation import safe_redirect
from phm.dashboard.roles import ENGINEER, OPERATOR, role_required


def _diagnosis(pk: int) -> Diagnosis:
    return get_object_or_404(Diagnosis.objects.select_related("alarm", "equipment__line__area__site", "model_version", "image"), pk=pk)


@role_required(OPERATOR)
@require_GET
def diagnosis_detail(request: HttpRequest, pk: int) -> HttpResponse:
    diagnosis = _diagnosis(pk)
    return render(request, "analytics/diagnosis.html", {"dv": selectors.diagnosis_view(diagnosis), "alarm": diagnosis.alarm})


@role_required(ENGINEER)
@require_POST
def diagnosis_feedback(request: HttpRequest, pk: int) -> HttpResponse:
    diagnosis = _diagnosis(pk)
    verdict = request.POST.get("verdict", "")
    try:
        row = services.submit_feedback(diagnosis=diagnosis, verdict=verdict, user=request.user, fault=request.POST.get("fault", ""),
                                       comment=request.POST.get("comment", ""))
    except services.FeedbackError as exc:
        messages.error(request, f"diagnosis {pk}: {exc}")
    else:
        messages.success(request, f"diagnosis {pk}: {row.get_verdict_display().lower()} as {row.label}; it will be a label in the next retraining")
    # back to the equipment page the form was on, if ``next`` is a path on this site
    return safe_redirect(request, request.POST.get("next", ""), fallback=reverse("analytics:diagnosis", kwargs={"pk": pk}))


@role_required(OPERATOR)
@require_GET
def cited_passage(request: HttpRequest, pk: int) -> HttpResponse:
    """A knowledge-base passage that a recommended action cites, with its document and location."""
    from phm.assistant.models import Chunk

    chunk = get_object_or_404(Chunk.objects.select_related("document"), pk=pk)
    return render(request, "analytics/passage.html", {"chunk": chunk})

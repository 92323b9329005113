"""Knowledge-base page: upload, list and delete documents (the chat page is built on the API)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from phm.assistant import services
from phm.assistant.models import Document, DocumentJob, DocumentType
from phm.uploads import UploadTooLarge


@login_required
def documents(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a file to upload.")
        else:
            try:
                with transaction.atomic():
                    job = services.queue_document(upload=upload, doc_type=request.POST.get("doc_type", ""), equipment=request.POST.get("equipment", ""),
                                                  equipment_type=request.POST.get("equipment_type", ""), user=request.user)
            except (services.KnowledgeBaseError, UploadTooLarge) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"{job.name}: checked, {job.chunks_total} passages queued for indexing; the table below shows progress.")
        return redirect("assistant:documents")
    context = {"documents": Document.objects.all(), "doc_types": DocumentType.choices, "jobs": DocumentJob.objects.all()[:10]}
    return render(request, "assistant/documents.html", context)


@login_required
@require_POST
def delete_document(request: HttpRequest, pk: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=pk)
    services.delete_document(document=document)
    messages.success(request, f"Deleted {document.name} and its passages.")
    return redirect("assistant:documents")

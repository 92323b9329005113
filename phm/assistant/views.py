"""Knowledge-base page: upload, list and delete documents (the chat page is built on the API)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from phm.assistant import services
from phm.assistant.models import Document, DocumentType
from phm.uploads import UploadTooLarge, check_upload_size


@login_required
def documents(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a file to upload.")
        else:
            try:
                check_upload_size(kind="document", name=upload.name, size=upload.size)
                outcome = services.ingest_document(
                    name=upload.name, content=upload.read(), doc_type=request.POST.get("doc_type", ""),
                    equipment=request.POST.get("equipment", ""), equipment_type=request.POST.get("equipment_type", ""), uploaded_by=request.user,
                )
            except (services.KnowledgeBaseError, UploadTooLarge) as exc:
                messages.error(request, str(exc))
            else:
                verb = "Replaced" if outcome.replaced else "Added"
                messages.success(request, f"{verb} {outcome.document.name}: {outcome.document.chunk_count} passages indexed.")
        return redirect("assistant:documents")
    context = {"documents": Document.objects.all(), "doc_types": DocumentType.choices}
    return render(request, "assistant/documents.html", context)


@login_required
@require_POST
def delete_document(request: HttpRequest, pk: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=pk)
    services.delete_document(document=document)
    messages.success(request, f"Deleted {document.name} and its passages.")
    return redirect("assistant:documents")

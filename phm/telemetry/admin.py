from django import forms
from django.contrib import admin
from django.db.models import OuterRef, Subquery

from phm.telemetry import jobs
from phm.telemetry.models import (
    FaultInjection,
    FileIngestJob,
    InspectionImage,
    LatestReading,
    LogEvent,
    LogTemplate,
    QuarantinedRecord,
)
from phm.uploads import UploadTooLarge, check_upload_size


@admin.register(LatestReading)
class LatestReadingAdmin(admin.ModelAdmin):
    list_display = ["sensor", "ts", "value", "quality", "received_at"]
    list_select_related = ["sensor"]
    search_fields = ["sensor__tag"]


@admin.register(LogEvent)
class LogEventAdmin(admin.ModelAdmin):
    list_display = ["ts", "source", "level", "template_id", "merged_into", "message"]
    list_filter = ["level"]
    search_fields = ["source", "message", "template_id"]

    def get_queryset(self, request):
        # One subquery, not a query per row: the template each stored id merged into.
        merged = LogTemplate.objects.filter(template_id=OuterRef("template_id")).values("merged_into")[:1]
        return super().get_queryset(request).annotate(template_merged_into=Subquery(merged))

    @admin.display(description="merged into")
    def merged_into(self, event: LogEvent) -> str:
        """The template the stored id merged into, if it did (the stored id is never rewritten)."""
        return getattr(event, "template_merged_into", None) or ""


@admin.register(LogTemplate)
class LogTemplateAdmin(admin.ModelAdmin):
    """``merged_into``: an alias shows the template its lines count with now (set by the
    connector's miner; an id keeps its meaning, so it is not edited here)."""

    list_display = ["template_id", "template", "merged_into", "split_from", "first_seen"]
    list_filter = ["merged_into"]
    search_fields = ["template_id", "template", "merged_into"]
    readonly_fields = ["merged_into", "split_from"]


@admin.register(InspectionImage)
class InspectionImageAdmin(admin.ModelAdmin):
    list_display = ["equipment", "ts", "media_type", "width", "height", "uploaded_at"]
    list_filter = ["media_type"]
    search_fields = ["equipment__tag"]


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(admin.ModelAdmin):
    list_display = ["received_at", "kind", "channel", "batch_index", "error"]
    list_filter = ["kind"]
    search_fields = ["channel", "error"]
    readonly_fields = ["kind", "channel", "batch_index", "payload", "error", "received_at"]


class FileIngestJobUploadForm(forms.ModelForm):
    """Upload a historian export from the admin: the file and its spec, checked before anything is stored."""

    spec = forms.JSONField(
        initial=dict,
        help_text='connectors.files.FileSpec fields as JSON, e.g. {"layout": "wide", "separator": ";", "decimal": ",", '
        '"timezone": "Europe/Berlin"} or {"layout": "long"}; see the README (historian files).',
    )

    class Meta:
        model = FileIngestJob
        fields = ["file", "spec"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            check_upload_size(kind="historian", name=upload.name, size=upload.size)
            jobs.check_upload_decoded_size(upload)
        except UploadTooLarge as exc:
            raise forms.ValidationError(str(exc)) from exc
        return upload

    def clean_spec(self) -> dict:
        spec = self.cleaned_data["spec"]
        try:
            jobs.file_spec(spec)
        except (ValueError, TypeError) as exc:
            raise forms.ValidationError(f"invalid spec: {exc}") from exc
        return spec


@admin.register(FileIngestJob)
class FileIngestJobAdmin(admin.ModelAdmin):
    list_display = ["original_name", "status", "rows_done", "accepted", "duplicate", "rejected", "created_at", "finished_at"]
    list_filter = ["status"]
    # A job is a record of one ingestion: after the upload nothing about it is editable.
    job_fields = ["original_name", "file", "spec", "created_by", "status", "bytes_total", "bytes_done", "rows_done", "accepted",
                  "duplicate", "rejected", "error", "started_at", "finished_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = FileIngestJobUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["file", "spec"] if obj is None else self.job_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.job_fields

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        jobs.create_file_job(uploaded_file=form.cleaned_data["file"], spec=form.cleaned_data["spec"], user=request.user, job=obj)
        jobs.enqueue_file_job(obj)


@admin.register(FaultInjection)
class FaultInjectionAdmin(admin.ModelAdmin):
    list_display = ["equipment", "fault", "start", "end", "severity", "source"]
    list_filter = ["fault", "source"]

from django.contrib import admin

from phm.telemetry.models import (
    FaultInjection,
    FileIngestJob,
    InspectionImage,
    LatestReading,
    LogEvent,
    LogTemplate,
    QuarantinedRecord,
)


@admin.register(LatestReading)
class LatestReadingAdmin(admin.ModelAdmin):
    list_display = ["sensor", "ts", "value", "quality", "received_at"]
    list_select_related = ["sensor"]
    search_fields = ["sensor__tag"]


@admin.register(LogEvent)
class LogEventAdmin(admin.ModelAdmin):
    list_display = ["ts", "source", "level", "template_id", "message"]
    list_filter = ["level"]
    search_fields = ["source", "message", "template_id"]


@admin.register(LogTemplate)
class LogTemplateAdmin(admin.ModelAdmin):
    list_display = ["template_id", "template", "first_seen"]
    search_fields = ["template_id", "template"]


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


@admin.register(FileIngestJob)
class FileIngestJobAdmin(admin.ModelAdmin):
    list_display = ["original_name", "status", "rows_done", "accepted", "duplicate", "rejected", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = ["status", "bytes_total", "bytes_done", "rows_done", "accepted", "duplicate", "rejected", "error", "started_at", "finished_at"]


@admin.register(FaultInjection)
class FaultInjectionAdmin(admin.ModelAdmin):
    list_display = ["equipment", "fault", "start", "end", "severity", "source"]
    list_filter = ["fault", "source"]

from django.contrib import admin

from phm.analytics.models import DiagnoserTrainingJob, DiagnoserVersion, Diagnosis, DiagnosisFeedback


class DiagnosisFeedbackInline(admin.TabularInline):
    model = DiagnosisFeedback
    extra = 0
    fields = ["verdict", "label", "corrected_fault", "user", "comment", "created_at", "used_in_training_at", "trained_version"]
    readonly_fields = ["created_at", "used_in_training_at", "trained_version"]


@admin.register(Diagnosis)
class DiagnosisAdmin(admin.ModelAdmin):
    list_display = ["id", "alarm", "equipment", "trigger", "status", "fault", "probability", "model_version", "latency_ms", "created_at"]
    list_filter = ["status", "trigger", "fault", "equipment__equipment_type"]
    search_fields = ["equipment__tag", "fault"]
    raw_id_fields = ["alarm", "image"]
    readonly_fields = ["embedding", "claimed_at", "created_at", "finished_at", "latency_ms"]
    inlines = [DiagnosisFeedbackInline]


@admin.register(DiagnosisFeedback)
class DiagnosisFeedbackAdmin(admin.ModelAdmin):
    list_display = ["id", "diagnosis", "verdict", "label", "user", "created_at", "used_in_training_at", "trained_version"]
    list_filter = ["verdict", "label"]
    raw_id_fields = ["diagnosis"]


@admin.register(DiagnoserVersion)
class DiagnoserVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "source", "is_active", "backbone", "parent", "created_at", "activated_at"]
    readonly_fields = ["created_at", "activated_at"]


@admin.register(DiagnoserTrainingJob)
class DiagnoserTrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "stage", "percent", "feedback_count", "replay_count", "result", "created_at", "finished_at"]
    list_filter = ["kind", "status"]

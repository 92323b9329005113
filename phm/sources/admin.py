from django import forms
from django.contrib import admin

from phm.sources.models import ConnectorDefinition, ConnectorStatus, LogFileOffset
from phm.sources.secrets import SecretError, keep_secrets, masked


class ConnectorDefinitionForm(forms.ModelForm):
    """The config with its secrets masked (write-only, as in the API): a masked or left-out
    secret keeps the stored value when the form is saved."""

    class Meta:
        model = ConnectorDefinition
        fields = "__all__"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["config"] = masked(self.instance.config)

    def clean_config(self):
        config = self.cleaned_data["config"]
        stored = ConnectorDefinition.objects.filter(pk=self.instance.pk).values_list("config", flat=True).first() if self.instance.pk else None
        try:
            return keep_secrets(config, stored)
        except SecretError as exc:
            raise forms.ValidationError(str(exc)) from None


class ConnectorStatusInline(admin.StackedInline):
    model = ConnectorStatus
    can_delete = False
    extra = 0
    readonly_fields = [f.name for f in ConnectorStatus._meta.fields if f.name not in ("id", "connector")]


@admin.register(ConnectorDefinition)
class ConnectorDefinitionAdmin(admin.ModelAdmin):
    form = ConnectorDefinitionForm
    list_display = ["name", "kind", "enabled", "state", "last_message_at", "accepted", "rejected", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "description"]
    inlines = [ConnectorStatusInline]

    @admin.display(description="state")
    def state(self, obj):
        return getattr(getattr(obj, "status", None), "state", "never ran")

    @admin.display(description="last message")
    def last_message_at(self, obj):
        return getattr(getattr(obj, "status", None), "last_message_at", None)

    @admin.display(description="accepted")
    def accepted(self, obj):
        return getattr(getattr(obj, "status", None), "accepted", 0)

    @admin.display(description="rejected")
    def rejected(self, obj):
        return getattr(getattr(obj, "status", None), "rejected", 0)


@admin.register(LogFileOffset)
class LogFileOffsetAdmin(admin.ModelAdmin):
    list_display = ["key", "offset", "inode", "updated_at"]
    search_fields = ["key"]

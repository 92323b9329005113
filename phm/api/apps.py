from django.apps import AppConfig


class ApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "phm.api"
    label = "api"

    def ready(self) -> None:
        # Timestamps stored as epoch microseconds are aware datetimes to the ORM; DRF's model
        # serializer would otherwise map the BigIntegerField base class to IntegerField and fail
        # (500) on the first row. Registering the mapping once covers every model serializer,
        # present and future, and the OpenAPI schema then says ``date-time``.
        from rest_framework import serializers

        from phm.telemetry.fields import EpochMicrosecondsField

        serializers.ModelSerializer.serializer_field_mapping[EpochMicrosecondsField] = serializers.DateTimeField

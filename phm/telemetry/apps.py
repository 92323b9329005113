from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "phm.telemetry"
    label = "telemetry"

    def ready(self) -> None:
        # The database holds hashes, tokens and webhook secrets: owner-only (phm/files.py).
        from phm.files import keep_sqlite_private

        keep_sqlite_private()

from django.apps import AppConfig


class ConditionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "phm.condition"
    label = "condition"
    verbose_name = "Condition monitoring"

    def ready(self) -> None:
        from phm.condition import classification_signals  # noqa: F401  (connects the post_save hook)

from django.urls import path
from rest_framework.routers import DefaultRouter

from phm.api import views

# Trailing slash optional (SCADA clients differ); no ".json" format suffixes, since tags contain dots.
router = DefaultRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("sites", views.SiteViewSet)
router.register("areas", views.AreaViewSet)
router.register("lines", views.LineViewSet)
router.register("equipment", views.EquipmentViewSet)
router.register("sensors", views.SensorViewSet)
router.register("ingest/files", views.FileIngestJobViewSet, basename="file-ingest-job")
router.register("log-templates", views.LogTemplateViewSet, basename="log-template")
router.register("log-events", views.LogEventViewSet, basename="log-event")

urlpatterns = [
    path("readings", views.ReadingsIngestView.as_view(), name="readings-ingest"),
    path("logs", views.LogsIngestView.as_view(), name="logs-ingest"),
    *router.urls,
]

from django.urls import path
from rest_framework.routers import SimpleRouter

from phm.condition import api, api_rul

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("captures", api.WaveformCaptureViewSet, basename="capture")
router.register("measurement-points", api.MeasurementPointViewSet, basename="measurement-point")
router.register("work-orders", api_rul.WorkOrderViewSet, basename="work-order")
router.register("rul-models", api_rul.RULModelViewSet, basename="rul-model")
router.register("rul-jobs", api_rul.RULTrainingJobViewSet, basename="rul-job")

urlpatterns = [
    path("equipment/<str:tag>/rul", api_rul.EquipmentRULView.as_view(), name="equipment-rul"),
    *router.urls,
]

from rest_framework.routers import SimpleRouter

from phm.condition import api

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("captures", api.WaveformCaptureViewSet, basename="capture")
router.register("measurement-points", api.MeasurementPointViewSet, basename="measurement-point")

urlpatterns = router.urls

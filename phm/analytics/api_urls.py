from rest_framework.routers import SimpleRouter

from phm.analytics import api

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("detectors", api.DetectorConfigViewSet, basename="detector")
router.register("training-jobs", api.TrainingJobViewSet, basename="training-job")

urlpatterns = router.urls

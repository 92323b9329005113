from rest_framework.routers import SimpleRouter

from phm.analytics import api, api_diagnosis

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("detectors", api.DetectorConfigViewSet, basename="detector")
router.register("training-jobs", api.TrainingJobViewSet, basename="training-job")
router.register("diagnoses", api_diagnosis.DiagnosisViewSet, basename="diagnosis")
router.register("diagnoser", api_diagnosis.DiagnoserVersionViewSet, basename="diagnoser")
router.register("diagnoser-jobs", api_diagnosis.DiagnoserJobViewSet, basename="diagnoser-job")

urlpatterns = router.urls

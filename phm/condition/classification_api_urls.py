"""API routes of fault classification, mounted under /api/v1/ (phm.urls EXTRA_API_MODULES).
Kept apart from the captures API (phm.condition.api_urls) so the two can grow independently."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from phm.condition import classification_api as api

router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("classifiers", api.CaptureClassifierViewSet, basename="classifier")
router.register("classifier-jobs", api.ClassifierJobViewSet, basename="classifier-job")
router.register("capture-classifications", api.CaptureClassificationViewSet, basename="capture-classification")

urlpatterns = [
    path("capture-labels", api.CaptureLabelsView.as_view(), name="capture-labels"),
    path("labelled-captures", api.LabelledRecordingUploadView.as_view(), name="labelled-captures"),
    *router.urls,
]

from django.urls import path
from rest_framework.routers import SimpleRouter

from phm.assistant import api

router = SimpleRouter()
router.trailing_slash = "/?"  # like the core API: with or without the trailing slash
router.register("assistant/documents", api.DocumentViewSet, basename="assistant-document")
router.register("assistant/document-jobs", api.DocumentJobViewSet, basename="assistant-document-job")
router.register("assistant/conversations", api.ConversationViewSet, basename="assistant-conversation")

urlpatterns = [
    path("assistant/ask", api.AskView.as_view(), name="assistant-ask"),
    path("assistant/ask/stream", api.AskStreamView.as_view(), name="assistant-ask-stream"),
    *router.urls,
]

from rest_framework.routers import SimpleRouter

from phm.alarms import api

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("alarms", api.AlarmViewSet, basename="alarm")
router.register("alarm-points", api.AlarmPointViewSet, basename="alarm-point")
router.register("webhooks", api.WebhookEndpointViewSet, basename="webhook")

urlpatterns = router.urls

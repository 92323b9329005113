from rest_framework.routers import DefaultRouter

from phm.alarms import api

router = DefaultRouter(trailing_slash="/?")
router.register("alarms", api.AlarmViewSet, basename="alarm")
router.register("alarm-points", api.AlarmPointViewSet, basename="alarm-point")
router.register("webhooks", api.WebhookEndpointViewSet, basename="webhook")

urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from phm.sources import views

router = DefaultRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("connectors", views.ConnectorDefinitionViewSet, basename="connector")

urlpatterns = router.urls

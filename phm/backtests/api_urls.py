from rest_framework.routers import SimpleRouter

from phm.backtests import api

# Same conventions as phm.api: trailing slash optional, no format suffixes.
router = SimpleRouter()
router.include_format_suffixes = False
router.trailing_slash = "/?"
router.register("backtests", api.BacktestViewSet, basename="backtest")

urlpatterns = router.urls

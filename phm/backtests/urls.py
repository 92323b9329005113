from django.urls import path

from phm.backtests import views

app_name = "backtests"
urlpatterns = [
    path("backtests/", views.backtest_list, name="list"),
    path("backtests/start/", views.backtest_start, name="start"),
    path("backtests/<int:pk>/", views.backtest_detail, name="detail"),
]

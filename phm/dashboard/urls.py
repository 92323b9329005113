from django.urls import path

from phm.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.plant_overview, name="overview"),
    path("equipment/<str:tag>/", views.equipment_detail, name="equipment"),
    path("vendor/plotly.min.js", views.plotly_js, name="plotly-js"),
]

from django.conf import settings
from django.urls import path

from phm.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.plant_overview, name="overview"),
    path("equipment/<str:tag>/", views.equipment_detail, name="equipment"),
    path("console/", views.alarm_console, name="console"),
    path("console/rows/", views.alarm_console_rows, name="console-rows"),
    path("console/<int:alarm_id>/journal/", views.alarm_journal, name="journal"),
    path("chat/", views.chat, name="chat"),
    path("models/", views.models_page, name="models"),
    path("models/jobs/", views.training_jobs_rows, name="jobs-rows"),
    path("models/new/", views.detector_create, name="detector-create"),
    path("models/<int:pk>/<str:action>/", views.detector_action, name="detector-action"),
    path("connectors/", views.connectors_page, name="connectors"),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", views.media_file, name="media"),
    path("vendor/plotly.min.js", views.plotly_js, name="plotly-js"),
]

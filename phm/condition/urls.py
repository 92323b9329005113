from django.urls import path

from phm.condition import views

app_name = "condition"
urlpatterns = [
    path("equipment/<str:tag>/captures/upload/", views.capture_upload, name="capture-upload"),
]

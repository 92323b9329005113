from django.urls import path

from phm.alarms import views

app_name = "alarms"
urlpatterns = [
    path("alarms/", views.alarm_list, name="list"),
    path("alarms/<int:alarm_id>/", views.alarm_detail, name="detail"),
    path("alarms/<int:alarm_id>/<str:action>/", views.alarm_action, name="action"),
]

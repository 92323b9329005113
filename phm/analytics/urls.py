from django.urls import path

from phm.analytics import views

app_name = "analytics"
urlpatterns = [
    path("diagnoses/<int:pk>/", views.diagnosis_detail, name="diagnosis"),
    path("diagnoses/<int:pk>/feedback/", views.diagnosis_feedback, name="diagnosis-feedback"),
    path("knowledge/passages/<int:pk>/", views.cited_passage, name="passage"),
]

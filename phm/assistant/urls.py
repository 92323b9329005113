from django.urls import path

from phm.assistant import views

app_name = "assistant"
urlpatterns = [
    path("assistant/documents/", views.documents, name="documents"),
    path("assistant/documents/<int:pk>/delete/", views.delete_document, name="delete-document"),
]

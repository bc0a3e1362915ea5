from django.urls import path

from integrations import views

app_name = "connect"
urlpatterns = [
    path("<str:token>/", views.modal, name="modal"),
]

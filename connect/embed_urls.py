from django.urls import path

from connect.views import embed as views

app_name = "embed"
urlpatterns = [
    path("start", views.user_hash_start, name="user_hash_start"),
]

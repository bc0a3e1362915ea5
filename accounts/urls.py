from django.urls import path

from accounts import views

app_name = "embed"
urlpatterns = [
    path("start", views.user_hash_start, name="user_hash_start"),
]

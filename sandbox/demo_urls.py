"""The demo's pages outside /sandbox/: the landing page at ``/`` and its fresh-session button."""

from django.urls import path

from sandbox.landing import demo_landing, demo_session_open

urlpatterns = [
    path("", demo_landing, name="demo_landing"),
    path("demo/session/", demo_session_open, name="demo_session"),
]

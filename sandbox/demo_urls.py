"""The demo's pages outside /sandbox/: the landing page at ``/`` and its fresh-session button."""

from django.urls import path

from sandbox.landing import demo_handoff_open, demo_landing, demo_session_open

urlpatterns = [
    path("", demo_landing, name="demo_landing"),
    path("demo/session/", demo_session_open, name="demo_session"),
    path("demo/handoff/", demo_handoff_open, name="demo_handoff"),
]

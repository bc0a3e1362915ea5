"""The connect modal's URLs (namespace ``connect``, mounted at /connect/).

Every page of the modal carries its session token in the path, so that links work as plain
links; htmx requests also send it in the X-Portal-Session header, which writes require.
"""

from django.urls import path

from connect.views import credentials, installations, modal, oauth

app_name = "connect"
urlpatterns = [
    path("healthz", modal.healthz, name="healthz"),
    path(
        "icons/<int:app_id>/<str:digest>.<str:extension>",
        modal.app_icon_file,
        name="app_icon",
    ),
    path("oauth/callback/", oauth.oauth_callback, name="oauth_callback"),
    # Without a token (and no X-Portal-Session header) the page says a session is missing.
    path("", modal.modal, name="modal_without_session"),
    path("<str:token>/", modal.modal, name="modal"),
    path("<str:token>/apps/<slug:slug>/", modal.app_panel, name="app"),
    path("<str:token>/apps/<slug:slug>/accounts/", modal.credential_create, name="connect"),
    path("<str:token>/apps/<slug:slug>/oauth/", oauth.oauth_start, name="oauth_start"),
    path("<str:token>/oauth/<uuid:attempt_id>/", oauth.oauth_attempt, name="oauth_attempt"),
    path("<str:token>/oauth/<uuid:attempt_id>/cancel/", oauth.oauth_cancel, name="oauth_cancel"),
    path("<str:token>/accounts/<uuid:credential_id>/", credentials.account, name="account"),
    path(
        "<str:token>/accounts/<uuid:credential_id>/status/",
        credentials.account_status,
        name="account_status",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/retry/",
        credentials.account_retry,
        name="account_retry",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/rename/",
        credentials.account_rename,
        name="account_rename",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/reconnect/",
        credentials.account_reconnect,
        name="account_reconnect",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/disconnect/",
        credentials.account_disconnect,
        name="account_disconnect",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/flows/<uuid:flow_id>/switch/",
        installations.installation_switch_view,
        name="installation_switch",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/flows/<uuid:flow_id>/settings/",
        installations.installation_form_view,
        {"part": "settings"},
        name="installation_settings",
    ),
    path(
        "<str:token>/accounts/<uuid:credential_id>/flows/<uuid:flow_id>/workflows/",
        installations.installation_form_view,
        {"part": "workflows"},
        name="installation_workflows",
    ),
]

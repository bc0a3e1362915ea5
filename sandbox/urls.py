"""The sandbox provider's URLs, mounted at /sandbox/ only when PORTAL_SANDBOX_ENABLED is set."""

from django.urls import path
from oauth2_provider.views import RevokeTokenView, TokenView

from sandbox import views
from sandbox.host_example import host_example

app_name = "sandbox"
urlpatterns = [
    path("", views.SandboxHomeView.as_view(), name="home"),
    path("login/", views.SandboxLoginView.as_view(), name="login"),
    path("logout/", views.SandboxLogoutView.as_view(), name="logout"),
    path("keys/", views.SandboxApiKeysView.as_view(), name="keys"),
    path("keys/<int:pk>/revoke/", views.SandboxApiKeyRevokeView.as_view(), name="key_revoke"),
    path("o/authorize/", views.SandboxAuthorizationView.as_view(), name="authorize"),
    path("o/token/", TokenView.as_view(), name="token"),
    path("o/revoke_token/", RevokeTokenView.as_view(), name="revoke"),
    path("api/me", views.SandboxMeView.as_view(), name="me"),
    path("api/items", views.SandboxItemsView.as_view(), name="items"),
    path("host-example/", host_example, name="host_example"),
]

"""URLs: the admin (signed in through allauth), staff accounts, the API, the modal, the sandbox."""

from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from api.api import api

admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Connect portal"
admin.site.site_title = "Connect portal"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("embed/", include("accounts.urls")),
    path("connect/", include("integrations.urls")),
    path("api/v1/", api.urls),
]

if settings.PORTAL_SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

"""URLs: the admin (signed in through allauth), staff accounts, the API, the modal, the sandbox."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from api.api import api
from api.hooks import workflow_trigger
from core.conf import conf

admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Connect portal"
admin.site.site_title = "Connect portal"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("embed/", include("connect.embed_urls")),
    path("connect/", include("connect.urls")),
    path("api/v1/", api.urls),
    path("hooks/workflows/<str:token>", workflow_trigger, name="workflow_trigger"),
]

if conf.SANDBOX_ENABLED:
    urlpatterns += [
        path("sandbox/", include("sandbox.urls")),
        path("", include("sandbox.demo_urls")),
    ]

"""The sandbox provider as catalog apps: OAuth2, API key and basic, pointing at this server.

Re-running with another base URL (a new port, the test server) repoints the apps.
"""

from __future__ import annotations

from django.db import transaction

from integrations.models import App

SANDBOX_OAUTH = "sandbox-oauth"
SANDBOX_API_KEY = "sandbox-apikey"
SANDBOX_BASIC = "sandbox-basic"


def _definitions(base_url: str) -> dict[str, dict]:
    base = base_url.rstrip("/") + "/sandbox"
    verification = {"method": "GET", "path": "/me", "identity": ["email", "login"]}
    return {
        SANDBOX_OAUTH: {
            "name": "Sandbox (OAuth2)",
            "description": "The built-in OAuth2 provider: sign in as a sandbox account.",
            "icon": "integrations/icons/sandbox-oauth.svg",
            "auth_type": App.AuthType.OAUTH2,
            "authorization_url": f"{base}/o/authorize/",
            "token_url": f"{base}/o/token/",
            "revocation_url": f"{base}/o/revoke_token/",
            "scopes": ["profile", "items"],
            "pkce": True,
            "token_auth_method": App.TokenAuthMethod.POST,
            "auth_scheme": {
                "in": "header",
                "name": "Authorization",
                "template": "Bearer {access_token}",
            },
            "api_base_url": f"{base}/api",
            "verification": verification,
            "docs_url": f"{base}/",
            # The sandbox (django-oauth-toolkit) shows its sign-in page again for prompt=login.
            "add_account_prompt": "login",
            "popup_width": 560,
            "popup_height": 680,
        },
        SANDBOX_API_KEY: {
            "name": "Sandbox (API key)",
            "description": "The built-in API-key provider: create a key on its keys page.",
            "icon": "integrations/icons/sandbox-apikey.svg",
            "auth_type": App.AuthType.API_KEY,
            "fields": [
                {
                    "name": "api_key",
                    "label": "API key",
                    "help": "Create one on the sandbox's keys page; it starts with sbx_.",
                    "placeholder": "sbx_…",
                    "pattern": r"^sbx_[A-Za-z0-9_\-]{16,}$",
                    "secret": True,
                    "required": True,
                }
            ],
            "auth_scheme": {"in": "header", "name": "X-API-Key", "template": "{api_key}"},
            "api_base_url": f"{base}/api",
            "verification": verification,
            "docs_url": f"{base}/keys/",
        },
        SANDBOX_BASIC: {
            "name": "Sandbox (basic auth)",
            "description": "The built-in provider with an email and an API key as password.",
            "icon": "integrations/icons/sandbox-basic.svg",
            "auth_type": App.AuthType.BASIC,
            "fields": [
                {"name": "email", "label": "Email", "secret": False, "required": True},
                {"name": "api_key", "label": "API key", "secret": True, "required": True},
            ],
            "auth_scheme": {"in": "basic", "username": "{email}", "password": "{api_key}"},
            "api_base_url": f"{base}/api",
            "verification": verification,
            "docs_url": f"{base}/keys/",
        },
    }


@transaction.atomic
def sandbox_catalog_apps_ensure(*, base_url: str) -> dict[str, App]:
    apps = {}
    for slug, values in _definitions(base_url).items():
        app = App.objects.filter(tenant__isnull=True, slug=slug).first() or App(slug=slug)
        for name, value in values.items():
            setattr(app, name, value)
        app.full_clean()
        app.save()
        apps[slug] = app
    return apps

"""The one way a credential is applied to an outgoing request: base URL, headers, query, basic auth.

Used by verification, the proxy and the background jobs alike. Templates in the app's
definition name only plain placeholders (``{access_token}``, ``{api_key}``); they are filled by
a regular expression, not ``str.format``, so a template can never reach into an object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from integrations.models import App

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class TemplateValueMissing(Exception):
    """The stored secret lacks a value the app's templates need."""


def render_template(template: str, values: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values or values[name] in (None, ""):
            raise TemplateValueMissing(f"The credential has no value for '{name}'.")
        return str(values[name])

    return PLACEHOLDER.sub(replace, template)


@dataclass
class AppliedAuth:
    """What to add to a request so that the provider sees the account."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


def template_values(*, app: App, secret: dict[str, Any]) -> dict[str, Any]:
    """What the app's templates may use: the secret's own fields, plus the token-response values
    the app declares, each only when it matches the app's pattern for it."""
    values = {key: value for key, value in secret.items() if key != "extras"}
    extras = secret.get("extras") or {}
    for declared in app.token_response_fields:
        value = extras.get(declared["name"])
        if isinstance(value, str) and re.fullmatch(declared["pattern"], value):
            values[declared["name"]] = value
    return values


def auth_apply(*, app: App, secret: dict[str, Any]) -> AppliedAuth:
    scheme = app.auth_scheme
    secret = template_values(app=app, secret=secret)
    applied = AppliedAuth(
        base_url=render_template(app.api_base_url, secret), headers=dict(app.request_headers)
    )
    if scheme["in"] == "basic":
        applied.basic_auth = (
            render_template(scheme["username"], secret),
            render_template(scheme["password"], secret),
        )
    elif scheme["in"] == "header":
        applied.headers[scheme["name"]] = render_template(scheme["template"], secret)
    elif scheme["in"] == "query":
        applied.params[scheme["name"]] = render_template(scheme["template"], secret)
    return applied

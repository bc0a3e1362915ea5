"""Validation of what tenants send us: themes, embedding origins, redirect URIs."""

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

COLOUR_PATTERN = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
THEME_COLOUR_KEYS = ("primary_color", "sidepanel_background_color", "sidepanel_text_color")
THEME_URL_KEYS = ("logo_url", "favicon_url", "privacy_url", "terms_url")
THEME_TEXT_KEYS = ("vault_name",)
THEME_KEYS = THEME_COLOUR_KEYS + THEME_URL_KEYS + THEME_TEXT_KEYS

_url_validator = URLValidator(schemes=["https", "http"])


def validate_http_url(value: str, *, field: str) -> str:
    try:
        _url_validator(value)
    except ValidationError as exc:
        raise ValidationError(
            {field: f"{value!r} is not a valid http(s) URL."}, code="invalid_url"
        ) from exc
    return value


def validate_theme(theme: Any) -> dict[str, str]:
    """Return a clean theme dict or raise a ValidationError naming each bad key."""
    if theme in (None, ""):
        return {}
    if not isinstance(theme, dict):
        raise ValidationError("The theme must be an object.", code="invalid_theme")
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for key, value in theme.items():
        if key not in THEME_KEYS:
            errors[key] = f"Unknown theme key. Known keys: {', '.join(THEME_KEYS)}."
            continue
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            errors[key] = "Must be a string."
        elif key in THEME_COLOUR_KEYS and not COLOUR_PATTERN.match(value):
            errors[key] = f"{value!r} is not a colour like #1a73e8 or #fff."
        elif key in THEME_URL_KEYS:
            try:
                validate_http_url(value, field=key)
            except ValidationError:
                errors[key] = f"{value!r} is not a valid http(s) URL."
            else:
                clean[key] = value
        elif key in THEME_TEXT_KEYS and len(value) > 80:
            errors[key] = "At most 80 characters."
        else:
            clean[key] = value
    if errors:
        raise ValidationError(
            {f"theme.{key}": message for key, message in errors.items()}, code="invalid_theme"
        )
    return clean


def normalise_origin(value: str) -> str:
    """``https://Example.com:443/`` -> ``https://example.com``; raise if not a bare origin."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(
            f"{value!r} is not an origin like https://app.example.com.", code="invalid_origin"
        )
    if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        raise ValidationError(
            f"{value!r} must be a bare origin (scheme, host and port only, no path).",
            code="invalid_origin",
        )
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = parts.port
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def validate_origins(origins: Any) -> list[str]:
    if not isinstance(origins, list):
        raise ValidationError("Allowed origins must be a list.", code="invalid_origin")
    return sorted({normalise_origin(origin) for origin in origins if str(origin).strip()})


def origin_of(url: str) -> str | None:
    try:
        return normalise_origin(f"{urlsplit(url).scheme}://{urlsplit(url).netloc}")
    except (ValidationError, ValueError):
        return None

"""Validation of what tenants and end users send us: control characters in text, themes,
embedding origins, redirect URIs."""

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

COLOUR_PATTERN = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
THEME_COLOUR_KEYS = ("primary_color", "sidepanel_background_color", "sidepanel_text_color")
THEME_URL_KEYS = ("logo_url", "favicon_url", "privacy_url", "terms_url")
THEME_TEXT_KEYS = ("vault_name",)
THEME_CHOICE_KEYS = {"color_scheme": ("light", "dark", "auto")}
THEME_KEYS = THEME_COLOUR_KEYS + THEME_URL_KEYS + THEME_TEXT_KEYS + tuple(THEME_CHOICE_KEYS)

_url_validator = URLValidator(schemes=["https", "http"])

# C0 controls (NUL, CR, LF, ESC…), DEL and C1 controls: never in an id, a name, a URL, a label
# or a key. PostgreSQL cannot store NUL at all; the others split headers and log lines.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Free text (a setting's value, a note) may hold tabs and line breaks; nothing else.
TEXT_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same rules as JSON Schema patterns, for the OpenAPI schema to say what is checked.
NO_CONTROL_CHARACTERS_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def is_uuid(value: Any) -> bool:
    """Whether ``value`` reads as a UUID (an id a lookup may be given without a database error)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def validate_no_control_characters(value: str, *, text: bool = False) -> str:
    """``value`` unchanged, or a ValidationError with the code ``invalid_characters``.

    ``text``: free text, where tabs and line breaks are allowed (any other control character
    is not)."""
    pattern = TEXT_CONTROL_CHARACTERS if text else CONTROL_CHARACTERS
    if isinstance(value, str) and pattern.search(value):
        raise ValidationError(
            "Must not contain control characters other than tabs and line breaks."
            if text
            else "Must not contain control characters (NUL, line breaks, tabs and the like).",
            code="invalid_characters",
        )
    return value


def control_characters_find(data: Any, *, path: str = "") -> str | None:
    """Where, in a parsed JSON document, a key or a string holds a control character (other
    than a tab or a line break in a value): its dotted path, or None when there is none."""
    if isinstance(data, str):
        return (path or "body") if TEXT_CONTROL_CHARACTERS.search(data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if CONTROL_CHARACTERS.search(str(key)):
                return where
            if found := control_characters_find(value, path=where):
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if found := control_characters_find(value, path=f"{path}[{index}]"):
                return found
    return None


def validate_redirect_uri(value: str, *, allowed_origins: list[str]) -> str:
    """A clean absolute http(s) URL on one of ``allowed_origins``, or a ValidationError whose
    code is ``invalid_redirect_uri`` (malformed) or ``redirect_uri_not_allowed`` (elsewhere)."""

    def invalid(reason: str) -> ValidationError:
        return ValidationError(
            f"redirect_uri must be an absolute http(s) URL {reason}.", code="invalid_redirect_uri"
        )

    if CONTROL_CHARACTERS.search(value) or any(char.isspace() for char in value):
        raise invalid("without spaces or control characters (CR, LF, NUL…)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise invalid("with a valid host and port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("such as https://app.example.com/connected")
    if "@" in parts.netloc:
        raise invalid("without a user name or password")
    if "\\" in value:
        raise invalid("without backslashes")
    try:
        validate_http_url(value, field="redirect_uri")
    except ValidationError:
        raise invalid("such as https://app.example.com/connected") from None
    if origin_of(value) not in allowed_origins:
        raise ValidationError(
            "redirect_uri must be on one of the tenant's allowed origins ("
            + (", ".join(allowed_origins) or "none are set; add them in the admin")
            + ").",
            code="redirect_uri_not_allowed",
        )
    return value


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
        elif key in THEME_CHOICE_KEYS and value not in THEME_CHOICE_KEYS[key]:
            errors[key] = f"{value!r} is not one of: {', '.join(THEME_CHOICE_KEYS[key])}."
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

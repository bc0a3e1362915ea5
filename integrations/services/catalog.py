"""Load the shipped catalog of real providers (``integrations/catalog/apps.toml``) into ``App``.

The file is the source of truth for catalog apps (those without a tenant): each entry describes
its app completely, a key left out takes the model's default, and loading is idempotent. Catalog
apps that are no longer in the file are left alone, as credentials may still use them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from integrations.catalog_changes import catalog_changes_batched
from integrations.models import App

CATALOG_PATH = Path(__file__).resolve().parent.parent / "catalog" / "apps.toml"

# What a catalog entry may set. `is_enabled` is not among them: switching a catalog app off is an
# admin's decision, which reloading the catalog must not undo.
CATALOG_FIELDS: tuple[str, ...] = (
    "slug",
    "name",
    "description",
    "icon",
    "docs_url",
    "auth_type",
    "authorization_url",
    "token_url",
    "revocation_url",
    "scopes",
    "scope_separator",
    "pkce",
    "token_auth_method",
    "revocation_method",
    "authorization_params",
    "fields",
    "auth_scheme",
    "api_base_url",
    "verification",
    "request_headers",
    "token_response_fields",
    "refresh_buffer_seconds",
    "reverify_interval_seconds",
    "add_account_prompt",
    "popup_width",
    "popup_height",
)


class CatalogError(Exception):
    """The catalog file cannot be loaded; nothing was changed. Names the entry and the field."""

    def __init__(self, message: str, *, slug: str = "", field: str = "") -> None:
        super().__init__(message)
        self.slug = slug
        self.field = field


@dataclass(frozen=True)
class CatalogLoadResult:
    """Slugs of the catalog apps created, updated and found unchanged by one load.

    ``not_in_file`` lists catalog apps in the database that the file no longer has: they were
    left as they are.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)

    @property
    def created_count(self) -> int:
        return len(self.created)

    @property
    def updated_count(self) -> int:
        return len(self.updated)

    @property
    def unchanged_count(self) -> int:
        return len(self.unchanged)


def catalog_load(*, path: Path | None = None) -> CatalogLoadResult:
    """Create or update every catalog app described in the file, all or nothing.

    Each app is checked with ``full_clean()`` before it is saved; an app whose values already
    match the file is not written at all. Raises ``CatalogError`` naming the slug and field of
    the first bad entry, and then the database is as it was.
    """
    path = path or CATALOG_PATH
    entries = _read_entries(path)
    result = CatalogLoadResult()
    with transaction.atomic(), catalog_changes_batched():
        for entry in entries:
            slug = entry["slug"]
            values = _app_values(entry)
            app = App.objects.filter(tenant__isnull=True, slug=slug).first()
            if app is None:
                app = App(tenant=None, **values)
                _check(app, slug=slug)
                app.save()
                result.created.append(slug)
                continue
            changed = [name for name, value in values.items() if getattr(app, name) != value]
            if not changed:
                result.unchanged.append(slug)
                continue
            for name in changed:
                setattr(app, name, values[name])
            _check(app, slug=slug)
            app.save(update_fields=[*changed, "updated_at"])
            result.updated.append(slug)
        result.not_in_file.extend(
            App.objects.filter(tenant__isnull=True)
            .exclude(slug__in=[entry["slug"] for entry in entries])
            .order_by("slug")
            .values_list("slug", flat=True)
        )
    return result


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise CatalogError(f"The catalog file {path} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"The catalog file {path} is not valid TOML: {exc}.") from exc
    entries = data.get("apps")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"The catalog file {path} has no [[apps]] entries.")
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise CatalogError(f"Catalog entry #{position} is not an [[apps]] table.")
        slug = entry.get("slug")
        if not isinstance(slug, str) or not slug:
            raise CatalogError(f"Catalog entry #{position} has no slug.", field="slug")
        if slug in seen:
            raise CatalogError(
                f"Catalog app '{slug}' appears more than once.", slug=slug, field="slug"
            )
        seen.add(slug)
        unknown = sorted(set(entry) - set(CATALOG_FIELDS))
        if unknown:
            raise CatalogError(
                f"Catalog app '{slug}': unknown key(s) {', '.join(unknown)}.",
                slug=slug,
                field=unknown[0],
            )
        # The model defaults to PKCE on, which breaks providers that refuse it: say it each time.
        if entry.get("auth_type") == App.AuthType.OAUTH2 and "pkce" not in entry:
            raise CatalogError(
                f"Catalog app '{slug}': pkce: an OAuth2 entry must say whether the provider "
                "supports PKCE (pkce = true or false).",
                slug=slug,
                field="pkce",
            )
    return entries


def _app_values(entry: dict[str, Any]) -> dict[str, Any]:
    """Every catalog field: the entry's value, or the model's default for a key left out."""
    return {
        name: entry[name] if name in entry else App._meta.get_field(name).get_default()
        for name in CATALOG_FIELDS
    }


def _check(app: App, *, slug: str) -> None:
    try:
        app.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
        detail = "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in sorted(errors.items())
        )
        raise CatalogError(
            f"Catalog app '{slug}' is invalid: {detail}", slug=slug, field=min(errors)
        ) from exc

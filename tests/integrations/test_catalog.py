"""The shipped provider catalog, its loader service and the load_catalog command."""

from __future__ import annotations

import io
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.icons import icon_path
from integrations.models import App
from integrations.services.catalog import CATALOG_PATH, CatalogError, catalog_load
from tests import factories

REQUIRED_APPS = {
    "github": "oauth2",
    "google": "oauth2",
    "slack": "oauth2",
    "hubspot": "oauth2",
    "salesforce": "oauth2",
    "notion": "oauth2",
    "stripe": "api_key",
    "airtable": "oauth2",
    "zendesk": "basic",
    "mailchimp": "api_key",
}

SHIPPED_ENTRIES = tomllib.loads(CATALOG_PATH.read_text())["apps"]
SHIPPED_SLUGS = [entry["slug"] for entry in SHIPPED_ENTRIES]

OAUTH_ENTRY = """
[[apps]]
slug = "acme"
name = "Acme"
auth_type = "oauth2"
authorization_url = "https://acme.example.com/authorize"
token_url = "https://acme.example.com/token"
revocation_url = "https://acme.example.com/revoke"
scopes = ["read"]
pkce = true
auth_scheme = { in = "header", name = "Authorization", template = "Bearer {access_token}" }
api_base_url = "https://api.acme.example.com"
verification = { path = "/me", identity = ["email"] }
"""

KEY_ENTRY = """
[[apps]]
slug = "keyco"
name = "KeyCo"
auth_type = "api_key"
auth_scheme = { in = "header", name = "X-Api-Key", template = "{api_key}" }
api_base_url = "https://api.keyco.example.com"
verification = { path = "/whoami", identity = ["account.name"] }

[[apps.fields]]
name = "api_key"
label = "API key"
secret = true
required = true
"""


def write_catalog(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "apps.toml"
    path.write_text("\n".join(entries))
    return path


def catalog_state() -> dict[str, tuple]:
    return {
        app.slug: (app.name, app.token_url, app.revocation_url, app.updated_at)
        for app in App.objects.filter(tenant__isnull=True)
    }


def writes_in(queries: list[dict]) -> list[str]:
    return [
        query["sql"]
        for query in queries
        if query["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_shipped_catalog_loads_and_every_app_passes_full_clean(db):
    result = catalog_load()

    assert sorted(result.created) == sorted(SHIPPED_SLUGS)
    assert result.updated == [] and result.unchanged == [] and result.not_in_file == []
    apps = list(App.objects.filter(tenant__isnull=True))
    assert len(apps) == len(SHIPPED_SLUGS)
    for app in apps:
        app.full_clean()  # raises if anything the model checks is wrong


def test_shipped_catalog_has_the_required_providers_with_their_auth_types(db):
    catalog_load()

    auth_types = dict(App.objects.filter(tenant__isnull=True).values_list("slug", "auth_type"))
    assert {slug: auth_types.get(slug) for slug in REQUIRED_APPS} == REQUIRED_APPS


def test_shipped_catalog_uses_only_https_urls_and_states_pkce_for_every_oauth2_app():
    for entry in SHIPPED_ENTRIES:
        for key in ("docs_url", "authorization_url", "token_url", "revocation_url"):
            if entry.get(key):
                assert entry[key].startswith("https://"), (entry["slug"], key)
        base = entry["api_base_url"]
        if base.startswith("{"):
            # A base URL from the token response: its declared pattern must pin https.
            declared = {f["name"]: f["pattern"] for f in entry.get("token_response_fields", [])}
            assert declared[base.strip("{}")].startswith("https://"), entry["slug"]
        else:
            assert base.startswith("https://"), entry["slug"]
        if entry["auth_type"] == "oauth2":
            assert isinstance(entry.get("pkce"), bool), entry["slug"]
        else:
            assert entry.get("fields"), entry["slug"]


def test_reloading_the_catalog_reports_everything_unchanged_and_writes_nothing(db):
    catalog_load()
    before = catalog_state()

    with CaptureQueriesContext(connection) as queries:
        result = catalog_load()

    assert result.created == [] and result.updated == []
    assert sorted(result.unchanged) == sorted(SHIPPED_SLUGS)
    assert writes_in(queries.captured_queries) == []
    assert catalog_state() == before


def test_a_changed_entry_is_updated_and_the_others_are_left_untouched(db, tmp_path):
    catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY, KEY_ENTRY))
    before = catalog_state()

    changed = OAUTH_ENTRY.replace('name = "Acme"', 'name = "Acme Corp"')
    result = catalog_load(path=write_catalog(tmp_path, changed, KEY_ENTRY))

    assert result.updated == ["acme"]
    assert result.unchanged == ["keyco"]
    after = catalog_state()
    assert after["acme"][0] == "Acme Corp"
    assert after["acme"][3] > before["acme"][3]
    assert after["keyco"] == before["keyco"]


def test_a_key_removed_from_an_entry_resets_that_field_to_the_model_default(db, tmp_path):
    catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY))

    without_revocation = OAUTH_ENTRY.replace(
        'revocation_url = "https://acme.example.com/revoke"\n', ""
    )
    result = catalog_load(path=write_catalog(tmp_path, without_revocation))

    assert result.updated == ["acme"]
    assert App.objects.get(slug="acme", tenant__isnull=True).revocation_url == ""


def test_an_oauth2_entry_without_token_url_is_refused_naming_it_and_nothing_is_saved(db, tmp_path):
    broken = OAUTH_ENTRY.replace("acme", "brokenco").replace(
        'token_url = "https://brokenco.example.com/token"\n', ""
    )
    # The valid entry comes first, so its creation must be rolled back with the rest.
    path = write_catalog(tmp_path, KEY_ENTRY, broken)

    with pytest.raises(CatalogError, match=r"'brokenco'.*token_url") as excinfo:
        catalog_load(path=path)

    assert (excinfo.value.slug, excinfo.value.field) == ("brokenco", "token_url")
    assert not App.objects.exists()


def test_an_unknown_placeholder_is_refused_and_leaves_existing_apps_as_they_were(db, tmp_path):
    catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY, KEY_ENTRY))
    before = catalog_state()

    renamed = OAUTH_ENTRY.replace('name = "Acme"', 'name = "Acme Corp"')
    bad_template = KEY_ENTRY.replace(
        "https://api.keyco.example.com", "https://{region}.api.keyco.example.com"
    )
    with pytest.raises(CatalogError, match=r"'keyco'.*api_base_url.*region") as excinfo:
        catalog_load(path=write_catalog(tmp_path, renamed, bad_template))

    assert (excinfo.value.slug, excinfo.value.field) == ("keyco", "api_base_url")
    assert catalog_state() == before


def test_an_unknown_key_in_an_entry_is_refused_naming_it(db, tmp_path):
    typo = OAUTH_ENTRY.replace('scopes = ["read"]', 'scope = ["read"]')

    with pytest.raises(CatalogError, match=r"'acme'.*unknown key\(s\) scope") as excinfo:
        catalog_load(path=write_catalog(tmp_path, typo))

    assert excinfo.value.field == "scope"
    assert not App.objects.exists()


def test_an_oauth2_entry_must_say_whether_the_provider_supports_pkce(db, tmp_path):
    silent = OAUTH_ENTRY.replace("pkce = true\n", "")

    with pytest.raises(CatalogError, match=r"'acme'.*pkce"):
        catalog_load(path=write_catalog(tmp_path, silent))

    assert not App.objects.exists()


def test_a_duplicate_slug_is_refused(db, tmp_path):
    with pytest.raises(CatalogError, match=r"'acme' appears more than once"):
        catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY, OAUTH_ENTRY))

    assert not App.objects.exists()


def test_a_file_that_is_not_toml_is_refused_with_a_clear_error(db, tmp_path):
    path = write_catalog(tmp_path, "[[apps]\nslug = ")

    with pytest.raises(CatalogError, match="not valid TOML"):
        catalog_load(path=path)

    assert not App.objects.exists()


def test_catalog_apps_missing_from_the_file_are_left_alone_and_reported(db, tmp_path):
    legacy = factories.make_oauth_app(slug="legacy", name="Legacy")

    result = catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY))

    assert result.not_in_file == ["legacy"]
    kept = App.objects.get(pk=legacy.pk)
    assert (kept.name, kept.updated_at) == ("Legacy", legacy.updated_at)


def test_a_tenant_app_with_a_catalog_slug_is_not_touched(tenant, tmp_path):
    own = factories.make_api_key_app(slug="acme", tenant=tenant, name="Our Acme")

    result = catalog_load(path=write_catalog(tmp_path, OAUTH_ENTRY))

    assert result.created == ["acme"]
    kept = App.objects.get(pk=own.pk)
    assert (kept.name, kept.auth_type, kept.updated_at) == ("Our Acme", "api_key", own.updated_at)
    assert App.objects.get(slug="acme", tenant__isnull=True).auth_type == "oauth2"


def test_load_catalog_command_prints_what_changed(db):
    first, second = io.StringIO(), io.StringIO()

    call_command("load_catalog", stdout=first)
    call_command("load_catalog", stdout=second)

    count = len(SHIPPED_SLUGS)
    assert f"Created {count}, updated 0, unchanged 0 apps." in first.getvalue()
    assert "github" in first.getvalue()
    assert f"Created 0, updated 0, unchanged {count} apps." in second.getvalue()


def test_load_catalog_command_loads_the_file_given_with_path(db, tmp_path):
    out = io.StringIO()

    call_command("load_catalog", "--path", str(write_catalog(tmp_path, KEY_ENTRY)), stdout=out)

    assert "Created 1, updated 0, unchanged 0 apps." in out.getvalue()
    assert list(App.objects.values_list("slug", flat=True)) == ["keyco"]


def test_load_catalog_command_turns_bad_data_into_a_command_error(db, tmp_path):
    broken = KEY_ENTRY.replace('template = "{api_key}"', 'template = "{apikey}"')

    with pytest.raises(CommandError, match=r"'keyco'.*auth_scheme.*apikey"):
        call_command("load_catalog", "--path", str(write_catalog(tmp_path, broken)))

    assert not App.objects.exists()


@pytest.mark.parametrize("icon", sorted({entry["icon"] for entry in SHIPPED_ENTRIES}))
def test_every_icon_the_catalog_references_is_a_titled_svg_under_static(icon):
    found = finders.find(icon_path(icon))

    assert found, f"{icon} is not under static/ (run scripts/vendor-logos)"
    root = ET.parse(found).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # An intrinsic size, so an <img> of it has a natural width in every browser.
    assert root.get("width") and root.get("height")
    if icon.startswith("simple-icons:"):
        assert root.get("fill", "").startswith("#"), "vendored with its brand colour"
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None and title.text.strip()


def test_most_catalog_apps_have_a_brand_logo_and_the_rest_distinct_monograms():
    icons = [entry["icon"] for entry in SHIPPED_ENTRIES]
    assert len(set(icons)) == len(icons)
    assert sum(icon.startswith("simple-icons:") for icon in icons) >= 12

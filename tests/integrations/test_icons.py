"""App icons: vendored brand logos, tenants' links and uploads (sanitised), and monograms that
differ from app to app."""

import base64
import struct
import zlib

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Membership
from integrations.icons import (
    app_icon,
    icon_upload_clean,
    monogram,
    svg_sanitise,
    validate_icon,
)
from integrations.models import App
from sandbox.catalog import sandbox_catalog_apps_ensure
from tests import factories
from tests.policy import csp_directives

HOSTILE_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 viewBox="0 0 10 10" onload="alert(1)"><script>alert(2)</script><title>Ok</title>
<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>
<a href="javascript:alert(3)"><rect width="10" height="10"/></a>
<use xlink:href="https://evil.example/sprite.svg#x"/><use href="#ok"/>
<rect id="ok" width="5" height="5" fill="url(https://evil.example/p)" stroke="url(#g)"
 style="background:url(https://evil.example/t)"/></svg>"""


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_an_uploaded_svg_keeps_its_shapes_and_loses_everything_that_could_run_or_fetch():
    clean = svg_sanitise(HOSTILE_SVG).decode()
    for banned in ("script", "onload", "alert", "foreignObject", "evil.example", "style", "<a"):
        assert banned not in clean, banned
    assert '<rect width="10" height="10"' not in clean  # it was inside the dropped <a>
    assert 'href="#ok"' in clean and 'id="ok"' in clean and 'stroke="url(#g)"' in clean
    assert "<title>Ok</title>" in clean


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
        b"<html><body>not an svg</body></html>",
        b"<svg",
        b"\xff\xfe not text",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,
        tiny_png(4000, 10),
        b"<svg xmlns='http://www.w3.org/2000/svg'>" + b" " * 110_000 + b"</svg>",
    ],
)
def test_an_upload_that_is_not_a_small_png_or_svg_is_refused(data):
    with pytest.raises(ValidationError):
        icon_upload_clean(data)


def test_a_small_png_is_accepted_as_it_is():
    png = tiny_png()
    assert icon_upload_clean(png) == (png, "image/png")


@pytest.mark.parametrize(
    "icon", ["javascript:alert(1)", "http://example.com/x.png", "../../etc/passwd", "foo.svg"]
)
def test_an_icon_link_must_be_https_or_one_of_our_static_files(icon):
    with pytest.raises(ValidationError):
        validate_icon(icon)


def test_valid_icon_values():
    for icon in ("", "https://cdn.example.com/logo.png", "simple-icons:github"):
        validate_icon(icon)
    with pytest.raises(ValidationError, match="vendor-logos"):
        validate_icon("simple-icons:nosuchbrand")


def test_the_sandbox_apps_have_three_different_logos(db):
    apps = sandbox_catalog_apps_ensure(base_url="http://127.0.0.1:8000")
    assert len({app_icon(app).url for app in apps.values()}) == 3


def test_monograms_differ_between_apps_with_the_same_initials():
    first = monogram("Sales Board", "1:sales-board")
    second = monogram("Support Base", "1:support-base")
    third = monogram("Sync Bridge", "1:sync-bridge")
    assert first.letters == second.letters == third.letters == "SB"
    assert len({first.background, second.background, third.background}) == 3


def test_a_custom_app_without_an_icon_gets_a_monogram_and_a_catalog_app_its_logo(db, tenant):
    custom = factories.make_api_key_app(slug="inhouse", name="In House", tenant=tenant)
    assert app_icon(custom).is_monogram and app_icon(custom).letters == "IH"
    logo = factories.make_api_key_app(slug="stripe-like", icon="simple-icons:stripe")
    assert app_icon(logo).url.endswith("integrations/logos/stripe.svg")
    assert app_icon(logo).glyph


def test_staff_upload_an_svg_icon_that_is_stored_sanitised_and_served_inert(client, tenant):
    staff = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw-123456789", is_staff=True
    )
    Membership.objects.create(user=staff, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(staff)
    app = factories.make_api_key_app(slug="inhouse", name="In House", tenant=tenant)
    url = reverse("admin:integrations_app_change", args=[app.pk])
    form = client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in ("icon_file",)
    }
    for name in ("fields", "auth_scheme", "verification", "scopes", "authorization_params"):
        data[name] = __import__("json").dumps(getattr(app, name))
    data.update(
        {
            "tenant": tenant.pk,
            "request_headers": "{}",
            "token_response_fields": "[]",
            "icon_upload": SimpleUploadedFile("logo.svg", HOSTILE_SVG, "image/svg+xml"),
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    app.refresh_from_db()
    assert app.icon_file_type == "image/svg+xml" and app.icon_digest
    assert b"script" not in bytes(app.icon_file)

    served = client.get(app_icon(app).url)
    assert served.status_code == 200
    assert served["Content-Type"] == "image/svg+xml"
    assert "sandbox" in served["Content-Security-Policy"]
    assert served["X-Content-Type-Options"] == "nosniff"
    assert b"alert" not in served.content
    wrong = app_icon(app).url.replace(app.icon_digest, "0" * 16)
    assert client.get(wrong).status_code == 404
    assert client.get(app_icon(app).url.replace(".svg", ".png")).status_code == 404


def test_an_uploaded_icon_wins_over_the_link(db, tenant):
    png = tiny_png()
    app = factories.make_api_key_app(
        slug="withpng", tenant=tenant, icon="https://cdn.example.com/x.png"
    )
    App.objects.filter(pk=app.pk).update(
        icon_file=png, icon_file_type="image/png", icon_digest="abcdef0123456789"
    )
    app.refresh_from_db()
    assert app_icon(app).url.endswith("/abcdef0123456789.png")
    assert base64.b64encode(png)  # a real PNG was stored


def test_the_admin_previews_an_https_icon_link_which_its_policy_lets_in(client, tenant):
    staff = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw-123456789", is_staff=True
    )
    Membership.objects.create(user=staff, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(staff)
    app = factories.make_api_key_app(
        slug="linked", name="Linked", tenant=tenant, icon="https://cdn.acme.test/linked.png"
    )
    response = client.get(reverse("admin:integrations_app_change", args=[app.pk]))
    assert b'<img src="https://cdn.acme.test/linked.png"' in response.content
    assert "https:" in csp_directives(response["Content-Security-Policy"])["img-src"]
    # Only that page: the rest of the admin keeps its own-origin images.
    listing = client.get(reverse("admin:integrations_app_changelist"))
    assert "https:" not in csp_directives(listing["Content-Security-Policy"])["img-src"]

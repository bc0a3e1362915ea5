"""Opening the modal: the session, its apps, the embedding parameters, and the error pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import ConnectSession
from integrations.services.connect_sessions import connect_session_create, connect_session_revoke
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_BASIC, SANDBOX_OAUTH
from tests import factories
from tests.connect.helpers import build_world
from tests.policy import csp_directives


@pytest.fixture
def world(db, settings):
    settings.PORTAL_BASE_URL = "http://localhost:8000"
    return build_world("http://localhost:8000", allowed_origins=["https://app.acme.test"])


def test_the_session_url_shows_the_apps_of_the_sessions_deployment_and_nothing_else(client, world):
    response = client.get(world.modal_url())

    body = response.content.decode()
    assert response.status_code == 200
    for slug in (SANDBOX_OAUTH, SANDBOX_API_KEY, SANDBOX_BASIC):
        assert f"/apps/{slug}/" in body
    assert "draft-only-app" not in body
    assert "Connect your accounts" in body


def test_an_allowlist_narrows_the_list(client, world):
    _, token = world.new_session(apps=[world.apps[SANDBOX_API_KEY]])

    body = client.get(f"/connect/{token}/").content.decode()

    assert f"/apps/{SANDBOX_API_KEY}/" in body
    assert f"/apps/{SANDBOX_OAUTH}/" not in body


def test_a_tenant_with_nothing_published_shows_an_empty_state(client, db):
    tenant = factories.make_tenant(name="Empty Co")
    user = factories.make_end_user(tenant=tenant)
    token = connect_session_create(tenant=tenant, end_user=user).token

    body = client.get(f"/connect/{token}/").content.decode()

    assert "No apps to connect yet" in body
    assert "Empty Co has not made any integrations available to you" in body


def test_search_filters_the_list_as_a_partial(client, world):
    response = client.get(
        world.modal_url(),
        {"q": "basic"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="app-list",
        HTTP_X_PORTAL_SESSION=world.token,
    )

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="app-list"')
    assert f"/apps/{SANDBOX_BASIC}/" in body
    assert f"/apps/{SANDBOX_API_KEY}/" not in body
    assert "<html" not in body
    # The count is announced by the live region that stays on the page.
    assert '<span id="app-count" hx-swap-oob="innerHTML">1 app matches “basic”</span>' in body


def test_a_search_without_matches_says_so(client, world):
    body = client.get(world.modal_url(), {"q": "zzz-nothing"}).content.decode()

    assert "No app matches “zzz-nothing”" in body


@pytest.mark.parametrize(
    ("prepare", "message", "status"),
    [
        (lambda s: None, "This link is not a valid connect session", 404),
        (lambda s: connect_session_revoke(session=s), "has been closed", 403),
        (
            lambda s: ConnectSession.objects.filter(pk=s.pk).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            ),
            "has expired",
            403,
        ),
    ],
    ids=["forged", "revoked", "expired"],
)
def test_an_unusable_session_gets_a_clear_page_and_nothing_else(
    client, world, prepare, message, status
):
    prepare(world.session)
    token = world.token if status == 403 else world.token[:-4] + "abcd"

    response = client.get(f"/connect/{token}/")

    body = response.content.decode()
    assert response.status_code == status
    assert message in body
    assert "open the connection page again from the app you were using" in body
    assert "Sandbox" not in body
    assert response["Cache-Control"] == "no-store"


def test_the_modal_without_a_session_says_one_is_missing(client, db):
    response = client.get("/connect/")

    assert response.status_code == 404
    assert "This page needs a connect session, and none was given." in response.content.decode()


def test_an_htmx_request_whose_session_ended_reloads_the_page_to_show_why(client, world):
    connect_session_revoke(session=world.session)

    response = client.get(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/"),
        HTTP_HX_REQUEST="true",
        HTTP_X_PORTAL_SESSION=world.token,
    )

    assert response["HX-Refresh"] == "true"


def test_the_modal_sets_frame_ancestors_from_the_tenants_origins_and_never_a_cookie(client, world):
    response = client.get(world.modal_url())

    policy = csp_directives(response["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'self'", "https://app.acme.test"]
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert "X-Frame-Options" not in response
    assert not response.cookies


def test_the_modal_keeps_its_opener_only_when_the_sdk_opened_it(client, world):
    # The SDK's popup mode posts events to window.opener, which an opener policy would cut.
    opened_by_sdk = client.get(world.modal_url(), {"embed_origin": "https://app.acme.test"})
    direct = client.get(world.modal_url())
    foreign = client.get(world.modal_url(), {"embed_origin": "https://evil.example"})

    assert opened_by_sdk["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert direct["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert foreign["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"


def test_htmx_requests_carry_the_session_in_a_header_set_on_the_body(client, world):
    body = client.get(world.modal_url()).content.decode()

    assert f'hx-headers="{{&quot;X-Portal-Session&quot;: &quot;{world.token}&quot;}}"' in body


def test_an_allowed_embed_origin_is_accepted_after_normalisation(client, world):
    body = client.get(
        world.modal_url(), {"embed_origin": "HTTPS://App.Acme.test:443/", "hide_prompt": "1"}
    ).content.decode()

    assert 'data-embed-origin="https://app.acme.test"' in body
    assert "data-hide-prompt" in body
    # Links keep the parameters for the modal's own navigation.
    assert "?embed_origin=https%3A%2F%2Fapp.acme.test&amp;hide_prompt=1" in body


@pytest.mark.parametrize(("given", "kept"), [("0", "0"), ("1", "1"), ("yes", None)])
def test_the_sdks_close_button_choice_reaches_the_page_and_its_links(client, world, given, kept):
    body = client.get(world.modal_url(), {"close_button": given}).content.decode()

    if kept is None:
        assert "data-close-button" not in body
        assert "close_button=" not in body
    else:
        assert f'data-close-button="{kept}"' in body
        assert f"?close_button={kept}" in body


def test_an_embed_origin_that_is_not_allowed_is_ignored(client, world):
    body = client.get(world.modal_url(), {"embed_origin": "https://evil.example"}).content.decode()

    assert 'data-embed-origin=""' in body
    assert "evil.example" not in body


def test_the_deep_link_opens_one_apps_connect_form_directly(client, world):
    response = client.get(world.modal_url(), {"app": SANDBOX_API_KEY})

    body = response.content.decode()
    assert response.status_code == 200
    assert '<h1 id="view-title">Sandbox (API key)</h1>' in body
    assert 'name="api_key"' in body
    assert 'type="password"' in body


def test_the_deep_link_to_an_app_outside_the_session_says_it_is_not_available(client, world):
    response = client.get(world.modal_url(), {"app": "draft-only-app"})

    assert response.status_code == 404
    assert "is not one of the apps you can connect here" in response.content.decode()


def test_a_write_without_the_session_header_is_refused(client, world):
    response = client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"), {"api_key": "sbx_x" * 5}
    )

    assert response.status_code == 403
    assert "must come from the connect window" in response.content.decode()


def test_a_write_whose_header_names_another_session_is_refused(client, world):
    _, other = world.new_session()

    response = client.post(
        world.modal_url(f"apps/{SANDBOX_API_KEY}/accounts/"),
        {"api_key": "sbx_" + "x" * 20},
        HTTP_X_PORTAL_SESSION=other,
    )

    assert response.status_code == 403


def test_the_theme_of_the_session_colours_the_modal(client, world):
    _, token = world.new_session(
        theme={
            "primary_color": "#ffcc00",
            "vault_name": "Acme Vault",
            "privacy_url": "https://acme.test/privacy",
            "terms_url": "https://acme.test/terms",
            "logo_url": "https://acme.test/logo.png",
        }
    )

    body = client.get(f"/connect/{token}/").content.decode()

    # The brand colour as it is where it reads at AA (dark), a darker shade where not (light).
    assert ",#ffcc00);" in body and "--primary:light-dark(#" in body
    assert ",#0f172a);--side-bg" in body  # dark text stays readable on yellow
    assert "Acme Vault" in body
    assert 'href="https://acme.test/privacy"' in body
    assert 'href="https://acme.test/terms"' in body
    assert 'src="https://acme.test/logo.png"' in body


def test_htmx_is_served_by_the_project_not_a_cdn(client, world):
    body = client.get(world.modal_url()).content.decode()

    assert "/static/django_htmx/htmx-2.min.js" in body
    assert "cdn" not in body.lower()


def test_the_health_view_answers_ok(client, db):
    response = client.get("/connect/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"

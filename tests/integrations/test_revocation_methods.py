"""Disconnecting revokes at the provider the way each provider expects (RFC 7009, Slack, Notion)."""

import json

import pytest
from werkzeug import Response

from integrations.models import App
from integrations.services.oauth import OAuthClient, oauth_revoke
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(app):
    return OAuthClient(app=app, client_id="cid", client_secret="csecret", scopes=[])


def recorded(httpserver, answer=None):
    seen = []

    def handler(request):
        seen.append(request)
        return answer or Response("", status=200)

    httpserver.expect_request("/revoke", method="POST").respond_with_handler(handler)
    return seen


def test_rfc7009_posts_the_token_and_its_hint_with_client_authentication(httpserver):
    app = factories.make_oauth_app(revocation_url=httpserver.url_for("/revoke"))
    seen = recorded(httpserver)
    assert oauth_revoke(client=client_for(app), token="rt-1", token_type_hint="refresh_token")
    form = seen[0].form
    assert (form["token"], form["token_type_hint"], form["client_id"]) == (
        "rt-1",
        "refresh_token",
        "cid",
    )


def test_slack_style_sends_the_access_token_as_bearer_and_reads_ok_false_as_refused(httpserver):
    app = factories.make_oauth_app(
        revocation_url=httpserver.url_for("/revoke"), revocation_method=App.RevocationMethod.BEARER
    )
    seen = recorded(
        httpserver,
        Response(json.dumps({"ok": True, "revoked": True}), content_type="application/json"),
    )
    assert oauth_revoke(client=client_for(app), token="xoxb-1")
    assert seen[0].headers["Authorization"] == "Bearer xoxb-1"
    assert not seen[0].get_data()
    # A refresh token cannot authenticate its own revocation there: nothing is sent.
    assert not oauth_revoke(client=client_for(app), token="xoxe-1", token_type_hint="refresh_token")
    assert len(seen) == 1


def test_a_200_with_ok_false_is_not_counted_as_revoked(httpserver):
    app = factories.make_oauth_app(
        revocation_url=httpserver.url_for("/revoke"), revocation_method=App.RevocationMethod.BEARER
    )
    recorded(
        httpserver,
        Response(
            json.dumps({"ok": False, "error": "invalid_auth"}), content_type="application/json"
        ),
    )
    assert not oauth_revoke(client=client_for(app), token="xoxb-1")


def test_notion_style_posts_json_with_basic_auth_and_the_apps_version_header(httpserver):
    app = factories.make_oauth_app(
        revocation_url=httpserver.url_for("/revoke"),
        revocation_method=App.RevocationMethod.JSON,
        token_auth_method=App.TokenAuthMethod.BASIC,
        request_headers={"Notion-Version": "2022-06-28"},
    )
    seen = recorded(httpserver)
    assert oauth_revoke(client=client_for(app), token="secret_1")
    request = seen[0]
    assert request.get_json() == {"token": "secret_1"}
    assert request.authorization.username == "cid"
    assert request.headers["Notion-Version"] == "2022-06-28"


def test_the_shipped_catalog_revokes_slack_and_notion_their_own_way(db):
    from integrations.services.catalog import catalog_load

    catalog_load()
    methods = dict(App.objects.filter(tenant__isnull=True).values_list("slug", "revocation_method"))
    assert methods["slack"] == "bearer"
    assert methods["notion"] == "json"
    assert methods["google"] == "rfc7009"

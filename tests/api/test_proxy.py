"""The proxy against a real local upstream (pytest-httpserver): what it forwards, what it
refuses, its limits, and its audit trail."""

from __future__ import annotations

import json
import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from accounts.models import AuditLogEntry
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

SECRET = "key_proxysecret123456"


@pytest.fixture
def app(httpserver):
    return factories.make_api_key_app(slug="upstream", api_base_url=httpserver.url_for("/base"))


@pytest.fixture
def credential(end_user, app):
    return factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": SECRET}, identity="ada@upstream.test"
    )


def _proxy(api, path, credential=None, method="get", **kwargs):
    headers = kwargs.pop("headers", {})
    if credential is not None:
        headers["X-Portal-Credential"] = str(credential.pk)
    return api.request(method, f"/api/v1/proxy/upstream/{path}", headers=headers, **kwargs)


def test_a_call_reaches_the_base_url_with_the_accounts_auth_and_returns_the_upstream_answer(
    api, httpserver, credential
):
    httpserver.expect_request(
        "/base/v1/items", method="POST", headers={"X-API-Key": SECRET}, query_string="page=2"
    ).respond_with_json({"created": True}, status=201, headers={"ETag": '"abc"'})

    response = _proxy(api, "v1/items?page=2", credential, method="post", body={"title": "Hello"})

    assert response.status_code == 201
    assert response.json() == {"created": True}
    assert response["Content-Type"] == "application/json"
    assert response["ETag"] == '"abc"'
    assert response["X-Portal-Credential"] == str(credential.pk)
    request, _ = httpserver.log[0]
    assert json.loads(request.data) == {"title": "Hello"}
    assert request.headers["Content-Type"] == "application/json"


def test_the_callers_own_credentials_and_hop_by_hop_headers_are_not_forwarded(
    api, httpserver, credential
):
    httpserver.expect_request("/base/echo").respond_with_data("ok")

    response = _proxy(
        api,
        "echo",
        credential,
        headers={
            "Cookie": "session=caller",
            "X-Portal-User": "user-1",
            "X-Portal-Anything": "x",
            "Proxy-Authorization": "Basic eDp5",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "X-Forwarded-For": "10.0.0.1",
            "X-Custom": "kept",
        },
    )

    assert response.status_code == 200
    request, _ = httpserver.log[0]
    sent = {name.lower(): value for name, value in request.headers.items()}
    assert sent["x-api-key"] == SECRET
    assert sent["x-custom"] == "kept"
    for dropped in (
        "authorization",
        "cookie",
        "x-portal-user",
        "x-portal-anything",
        "x-portal-credential",
        "proxy-authorization",
        "x-drop-me",
        "x-forwarded-for",
    ):
        assert dropped not in sent, dropped
    assert api.key not in str(request.headers)


def test_the_users_only_account_is_used_when_no_credential_is_named(
    api, httpserver, end_user, credential
):
    httpserver.expect_request("/base/me", query_string="q=1").respond_with_json({"ok": 1})

    by_header = _proxy(api, "me?q=1", headers={"X-Portal-User": "user-1"})
    by_query = _proxy(api, "me?q=1&user=user-1")

    assert by_header.status_code == 200
    assert by_query.status_code == 200
    assert by_query["X-Portal-Credential"] == str(credential.pk)


def test_several_accounts_and_none_chosen_is_a_422(api, end_user, app, credential):
    factories.make_credential(end_user=end_user, app=app, identity="bob@upstream.test")

    response = _proxy(api, "me", headers={"X-Portal-User": "user-1"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "ambiguous_credential"


def test_no_account_named_and_no_user_is_a_422(api, credential):
    response = _proxy(api, "me")

    assert response.status_code == 422
    assert error_of(response)["code"] == "credential_required"


def test_a_user_without_an_account_for_the_app_is_a_422(api, end_user, app):
    response = _proxy(api, "me", headers={"X-Portal-User": "user-1"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "no_credential"


def test_a_credential_of_another_app_is_refused(api, end_user, app):
    other = factories.make_api_key_app(slug="other")
    theirs = factories.make_credential(end_user=end_user, app=other)

    response = _proxy(api, "me", theirs)

    assert response.status_code == 422
    assert error_of(response)["code"] == "credential_app_mismatch"


def test_an_unusable_credential_is_refused_without_calling_the_upstream(
    api, httpserver, end_user, app
):
    expired = factories.make_credential(end_user=end_user, app=app, status="invalid")

    response = _proxy(api, "me", expired)

    assert response.status_code == 422
    assert error_of(response)["code"] == "credential_unusable"
    assert httpserver.log == []


@pytest.mark.parametrize(
    "path",
    [
        "../secret",
        "v1/../../secret",
        "%2e%2e/secret",
        "%252e%252e/secret",
        "v1/%252f..%252fsecret",
        "v1\\..\\secret",
        "/evil.example/steal",
        "http://evil.example/steal",
        "https:/evil.example/steal",
        "./v1",
        "v1//x",
    ],
)
def test_paths_that_could_leave_the_base_url_are_refused(api, httpserver, credential, path):
    response = _proxy(api, path, credential)

    assert response.status_code == 400, (path, response.content)
    assert error_of(response)["code"] == "invalid_proxy_path"
    assert httpserver.log == []


def test_a_redirect_off_the_base_url_is_not_followed(api, httpserver, credential):
    elsewhere = HTTPServer(host="127.0.0.1", port=0)
    elsewhere.start()
    try:
        elsewhere.expect_request("/steal").respond_with_data("stolen")
        httpserver.expect_request("/base/away").respond_with_data(
            "", status=302, headers={"Location": elsewhere.url_for("/steal")}
        )
        httpserver.expect_request("/outside").respond_with_data("outside the base path")
        httpserver.expect_request("/base/up").respond_with_data(
            "", status=302, headers={"Location": "/outside"}
        )

        other_host = _proxy(api, "away", credential)
        other_path = _proxy(api, "up", credential)

        assert other_host.status_code == 502
        assert error_of(other_host)["code"] == "upstream_redirect_refused"
        assert other_path.status_code == 502
        assert elsewhere.log == []
        assert [request.path for request, _ in httpserver.log] == ["/base/away", "/base/up"]
    finally:
        elsewhere.clear()
        elsewhere.stop()


def test_a_redirect_under_the_base_url_is_followed_with_the_auth_applied(
    api, httpserver, credential
):
    httpserver.expect_request("/base/old").respond_with_data(
        "", status=301, headers={"Location": "/base/new"}
    )
    httpserver.expect_request("/base/new", headers={"X-API-Key": SECRET}).respond_with_json(
        {"moved": True}
    )

    response = _proxy(api, "old", credential)

    assert response.status_code == 200
    assert response.json() == {"moved": True}


def test_the_upstream_status_and_body_come_back_even_for_errors(api, httpserver, credential):
    httpserver.expect_request("/base/missing").respond_with_data(
        "<h1>Not here</h1>", status=404, content_type="text/html"
    )

    response = _proxy(api, "missing", credential)

    assert response.status_code == 404
    assert response.content == b"<h1>Not here</h1>"
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Portal-Credential"] == str(credential.pk)


def test_upstream_cookies_and_unknown_headers_are_not_returned(api, httpserver, credential):
    httpserver.expect_request("/base/me").respond_with_data(
        "{}",
        content_type="application/json",
        headers={"Set-Cookie": "upstream=1", "X-Internal": "x", "X-RateLimit-Remaining": "9"},
    )

    response = _proxy(api, "me", credential)

    assert "Set-Cookie" not in response
    assert "X-Internal" not in response
    assert response["X-RateLimit-Remaining"] == "9"


def test_a_response_over_the_size_cap_is_a_502(api, httpserver, credential, settings):
    settings.PORTAL_PROXY_MAX_RESPONSE_BYTES = 1000
    httpserver.expect_request("/base/big").respond_with_data("x" * 5000)

    def streamed(request):
        return Response((b"y" * 500 for _ in range(10)), content_type="text/plain")

    httpserver.expect_request("/base/stream").respond_with_handler(streamed)

    declared = _proxy(api, "big", credential)
    chunked = _proxy(api, "stream", credential)

    assert declared.status_code == 502
    assert error_of(declared)["code"] == "upstream_response_too_large"
    assert chunked.status_code == 502
    assert error_of(chunked)["code"] == "upstream_response_too_large"


def test_a_slow_upstream_is_a_504(api, httpserver, credential, settings):
    settings.PORTAL_PROXY_READ_TIMEOUT = 0.3
    release = threading.Event()

    def slow(request):
        release.wait(5)
        return Response("late")

    httpserver.expect_request("/base/slow").respond_with_handler(slow)

    try:
        response = _proxy(api, "slow", credential)
    finally:
        release.set()

    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"


def test_an_upstream_that_stalls_in_the_middle_of_its_body_is_a_504(
    api, httpserver, credential, settings
):
    settings.PORTAL_PROXY_READ_TIMEOUT = 0.3
    release = threading.Event()

    def stalling(request):
        def body():
            yield b"x" * 100
            release.wait(5)
            yield b"y"

        return Response(body(), content_type="text/plain")

    httpserver.expect_request("/base/stall").respond_with_handler(stalling)

    try:
        response = _proxy(api, "stall", credential)
    finally:
        release.set()

    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"


def test_an_unreachable_upstream_is_a_502(api, end_user):
    app = factories.make_api_key_app(slug="gone", api_base_url="http://127.0.0.1:9/api")
    credential = factories.make_credential(end_user=end_user, app=app)

    response = api.get("/api/v1/proxy/gone/me", headers={"X-Portal-Credential": str(credential.pk)})

    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_unreachable"


def test_query_auth_is_added_and_cannot_be_overridden_by_the_caller(api, httpserver, end_user):
    app = factories.make_api_key_app(
        slug="querykey",
        api_base_url=httpserver.url_for("/q"),
        auth_scheme={"in": "query", "name": "token", "template": "{api_key}"},
    )
    credential = factories.make_credential(end_user=end_user, app=app, secret={"api_key": SECRET})
    httpserver.expect_request("/q/list").respond_with_data("ok")

    response = api.get(
        "/api/v1/proxy/querykey/list?token=caller&page=3",
        headers={"X-Portal-Credential": str(credential.pk)},
    )

    assert response.status_code == 200
    (request,) = [request for request, _ in httpserver.log if request.path == "/q/list"]
    assert request.args.getlist("token") == [SECRET]
    assert request.args["page"] == "3"


def test_every_call_is_audited_with_the_credential_and_never_the_secret(
    api, httpserver, tenant, credential
):
    httpserver.expect_request("/base/me").respond_with_json({"ok": True})

    _proxy(api, "me", credential)

    entries = AuditLogEntry.objects.filter(tenant=tenant, credential=credential)
    call = entries.get()  # one entry: the secret's use and the call's result together
    assert call.action == "credential.use.proxy"
    assert call.actor_type == "api_key"
    assert call.detail["method"] == "GET"
    assert call.detail["path"] == "/me"
    assert call.detail["status_code"] == 200
    for entry in entries:
        assert SECRET not in json.dumps(entry.detail)
        assert SECRET not in entry.target


def test_an_unknown_app_is_a_404(api, credential):
    response = api.get("/api/v1/proxy/nope/me", headers={"X-Portal-Credential": str(credential.pk)})

    assert response.status_code == 404
    assert error_of(response)["code"] == "app_not_found"


def test_any_method_is_proxied_including_head_and_delete(api, httpserver, credential):
    httpserver.expect_request("/base/items/1", method="DELETE").respond_with_data("", status=204)
    httpserver.expect_request("/base/items/1", method="HEAD").respond_with_data(
        "", headers={"ETag": '"v1"'}
    )

    deleted = _proxy(api, "items/1", credential, method="delete")
    head = _proxy(api, "items/1", credential, method="head")

    assert deleted.status_code == 204
    assert head.status_code == 200
    assert head["ETag"] == '"v1"'
    assert [(r.method, r.path) for r, _ in httpserver.log] == [
        ("DELETE", "/base/items/1"),
        ("HEAD", "/base/items/1"),
    ]

"""The OpenAPI schema and docs, and the one error shape on every failure."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import EndUser
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

CONTRACT_OPERATIONS = {
    ("post", "/api/v1/sessions"),
    ("delete", "/api/v1/sessions/{session_id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{external_id}"),
    ("put", "/api/v1/users/{external_id}"),
    ("delete", "/api/v1/users/{external_id}"),
    ("get", "/api/v1/credentials"),
    ("post", "/api/v1/credentials"),
    ("get", "/api/v1/credentials/{credential_id}"),
    ("delete", "/api/v1/credentials/{credential_id}"),
    ("post", "/api/v1/credentials/{credential_id}/verify"),
    ("post", "/api/v1/users/{external_id}/installations"),
    ("get", "/api/v1/users/{external_id}/installations"),
    ("get", "/api/v1/users/{external_id}/installations/{flow_id}"),
    ("patch", "/api/v1/users/{external_id}/installations/{flow_id}"),
    ("delete", "/api/v1/users/{external_id}/installations/{flow_id}"),
    *(
        (method, "/api/v1/proxy/{app}/{path}")
        for method in ("get", "post", "put", "patch", "delete")
    ),
}
CREATING_POSTS = {
    "/api/v1/users",
    "/api/v1/credentials",
    "/api/v1/users/{external_id}/installations",
}


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_the_schema_names_each_response_status_once(client):
    # Swagger UI refuses a schema whose JSON repeats a key ("duplicated mapping key").
    def no_repeats(pairs):
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    json.loads(client.get("/api/v1/openapi.json").content, object_pairs_hook=no_repeats)


def test_the_schema_is_served_without_a_key_and_lists_the_contracts_operations(schema):
    listed = {(method, path) for method, path, _ in _operations(schema)}

    assert listed >= CONTRACT_OPERATIONS
    # One scheme for the one key, whichever route reads it (the proxy reads it its own way).
    assert list(schema["components"]["securitySchemes"]) == ["TenantKeyAuth"]
    assert schema["components"]["securitySchemes"]["TenantKeyAuth"]["scheme"] == "bearer"
    for method, path, operation in _operations(schema):
        assert operation["security"] == [{"TenantKeyAuth": []}], (method, path)


def test_every_operation_documents_its_errors_with_the_error_shape(schema):
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        assert {"401", "429"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorOut", (method, path, status)


def test_every_operation_has_its_own_operation_id(schema):
    ids = [operation["operationId"] for _, _, operation in _operations(schema)]

    assert len(ids) == len(set(ids))


def test_creating_posts_document_the_idempotency_key_header(schema):
    for path in CREATING_POSTS:
        names = {p["name"] for p in schema["paths"][path]["post"]["parameters"]}
        assert "Idempotency-Key" in names, path


def test_the_schema_has_examples_for_the_main_objects(schema):
    components = schema["components"]["schemas"]
    for name in ("CredentialOut", "UserOut", "CredentialIn", "InstallIn"):
        assert components[name].get("examples"), name


def test_the_docs_page_is_served(client):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content


def test_a_missing_key_is_a_401_in_the_error_shape():
    response = Client().get("/api/v1/users")

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_wrong_key_is_a_401():
    response = Client(headers={"Authorization": "Bearer cp_sk_000000000000_wrong"}).get(
        "/api/v1/credentials"
    )

    assert response.status_code == 401
    assert "wrong or has been revoked" in error_of(response)["message"]


def test_an_unknown_path_is_a_404_in_the_error_shape(api):
    response = api.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_wrong_method_is_a_405_in_the_error_shape(api):
    response = api.patch("/api/v1/credentials", {})

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_a_malformed_body_is_a_422_naming_the_fields(api):
    response = api.post("/api/v1/credentials", {"user": "", "fields": "nope"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert {"user", "app", "fields"} <= set(error["fields"])


def test_a_body_that_is_not_json_is_a_422(api):
    response = api.request(
        "post", "/api/v1/users", data="{not json", content_type="application/json"
    )

    assert response.status_code in (400, 422)
    error_of(response)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/users/a%00b", None),
        ("get", "/api/v1/credentials?user=a%00b", None),
        ("post", "/api/v1/users", {"id": "a\x00b"}),
        ("post", "/api/v1/sessions", {"end_user": {"id": "a\x00b"}}),
        ("get", "/api/v1/users/a%0D%0Ab", None),
        ("get", "/api/v1/users/a%1Bb/installations", None),
        ("get", "/api/v1/credentials?app=a%0Ab", None),
        ("get", "/api/v1/users?cursor=%7F", None),
        ("post", "/api/v1/users", {"id": "a\x07b"}),
        ("put", "/api/v1/users/ada", {"name": "Ada\x1b[31m"}),
        ("post", "/api/v1/sessions", {"end_user": {"id": "u", "name": "a\u0085b"}}),
        ("post", "/api/v1/sessions", {"end_user": {"id": "u"}, "custom_settings": {"k": "\x01"}}),
        ("post", "/api/v1/sessions", {"end_user": {"id": "u"}, "custom_settings": {"a\nb": 1}}),
    ],
    ids=[
        "user-path",
        "credentials-query",
        "users-body",
        "sessions-body",
        "crlf-in-path",
        "escape-in-path",
        "lf-in-query",
        "del-in-cursor",
        "bell-in-id",
        "escape-in-name",
        "c1-in-name",
        "control-in-free-json",
        "lf-in-free-json-key",
    ],
)
def test_a_control_character_anywhere_in_the_input_is_a_422_that_changes_nothing(
    api, method, path, body
):
    response = getattr(api, method)(path, body) if body is not None else api.get(path)

    assert response.status_code == 422, response.content
    assert error_of(response)["code"] == "invalid_characters"
    assert not EndUser.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/users", {"id": "a\nb"}, "id"),
        ("/api/v1/users", {"id": "a", "name": "Ada\tLovelace"}, "name"),
        ("/api/v1/sessions", {"end_user": {"id": "a\r\nb"}}, "end_user.id"),
    ],
    ids=["lf-in-id", "tab-in-name", "crlf-in-session-user"],
)
def test_a_line_break_or_tab_in_an_id_or_a_name_is_a_422_naming_the_field(api, path, body, field):
    """JSON text may hold tabs and line breaks, but no id or name of ours does."""
    response = api.post(path, body)

    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert "control characters" in error["fields"][field]
    assert not EndUser.objects.exists()


def test_free_text_in_custom_settings_may_hold_line_breaks(api):
    response = api.post(
        "/api/v1/sessions",
        {"end_user": {"id": "u"}, "custom_settings": {"note": "line one\nline two\tend"}},
    )

    assert response.status_code == 201, response.content

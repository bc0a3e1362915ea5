"""Tenant isolation: every operation of the schema, in every method, with tenant A's key
against each of tenant B's objects, answers 404 and shows nothing of B.

The operations come from the OpenAPI schema, so a new endpoint is walked automatically; one
with a path parameter or body this test does not know yet makes it fail until it is taught.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from accounts.models import EndUser
from accounts.services.audit import Actor
from api.api import api as ninja_api
from core.vault import open_secret
from integrations.models import (
    ConnectSession,
    Credential,
    FlowVersion,
    Installation,
    WorkflowRun,
)
from integrations.services.connect_sessions import Handoff, connect_session_create
from integrations.services.installations import installation_install
from integrations.services.workflow_runs import workflow_run_create
from tests import factories

pytestmark = pytest.mark.django_db

B_SECRET = "key_b_secret_never_shown_1234"
# Operations keyed by your own id create or list the caller's own objects: A gets its own,
# never B's (checked below), so these are not 404s.
OWN_OBJECT_OPERATIONS = {
    ("get", "/api/v1/users"): {200},
    ("get", "/api/v1/apps"): {200},
    ("get", "/api/v1/flows"): {200},
    ("post", "/api/v1/users"): {200, 201},
    ("put", "/api/v1/users/{external_id}"): {200, 201},
}


@pytest.fixture
def b(other_tenant):
    shared_app = factories.make_api_key_app(slug="shared-app")
    private_app = factories.make_api_key_app(
        slug="b-private-app", tenant=other_tenant, name="B Private App"
    )
    user = factories.make_end_user(
        tenant=other_tenant,
        external_id="b-user",
        email="b-person@globex.test",
        name="B Hidden Person",
    )
    credential = factories.make_credential(
        end_user=user,
        app=shared_app,
        secret={"api_key": B_SECRET},
        identity="b-identity@provider.test",
        label="B hidden label",
    )
    private_credential = factories.make_credential(
        end_user=user, app=private_app, identity="b-private@provider.test"
    )
    flow = factories.make_flow(tenant=other_tenant, apps=[shared_app], name="B Hidden Flow")
    deployment = factories.make_deployment(
        tenant=other_tenant, flows=[flow], name="B Hidden Deployment"
    )
    workflow = factories.make_workflow(
        flow=flow,
        key="b-hidden-workflow",
        name="B Hidden Workflow",
        steps=[{"name": "me", "app": "shared-app", "path": "me"}],
    )
    installation, _ = installation_install(
        end_user=user, flow=flow, credential=credential, actor=Actor.system()
    )
    session = connect_session_create(
        tenant=other_tenant,
        end_user=user,
        lifetime=timedelta(days=2),
        handoff=Handoff(recipient_name="B Hidden Recipient", single_use=True),
    ).session
    run = workflow_run_create(
        workflow=workflow,
        installation=installation,
        trigger=WorkflowRun.Trigger.REQUEST,
        data={"b_marker": "B hidden input"},
    )
    return {
        "workflow": workflow,
        "run": run,
        "tenant": other_tenant,
        "user": user,
        "credential": credential,
        "private_credential": private_credential,
        "flow": flow,
        "deployment": deployment,
        "installation": installation,
        "session": session,
        "shared_app": shared_app,
        "private_app": private_app,
    }


def _markers(b) -> list[str]:
    """Strings only B's data holds; tenant A never sends them."""
    return [
        b["user"].email,
        b["user"].name,
        b["credential"].identity,
        b["credential"].label,
        b["private_credential"].identity,
        b["flow"].name,
        b["deployment"].name,
        b["tenant"].name,
        b["private_app"].name,
        str(b["installation"].pk),
        b["workflow"].name,
        str(b["run"].pk),
        "B hidden input",
        "B Hidden Recipient",
        B_SECRET,
    ]


def _path_values(b) -> dict[str, list[str]]:
    return {
        "external_id": [b["user"].external_id],
        "credential_id": [str(b["credential"].pk), str(b["private_credential"].pk)],
        "flow_id": [str(b["flow"].pk)],
        "session_id": [str(b["session"].pk)],
        "app": [b["private_app"].slug, b["shared_app"].slug],
        "path": ["me"],
        "workflow_id": [str(b["workflow"].public_id)],
        "run_id": [str(b["run"].pk)],
    }


def _bodies(b) -> dict[tuple[str, str], dict]:
    return {
        ("post", "/api/v1/sessions"): {
            "end_user": {"id": "a-user"},
            "deployment_id": str(b["deployment"].pk),
        },
        ("post", "/api/v1/users"): {"id": b["user"].external_id},
        ("put", "/api/v1/users/{external_id}"): {},
        ("post", "/api/v1/credentials"): {
            "user": b["user"].external_id,
            "app": b["shared_app"].slug,
            "fields": {"api_key": "key_from_tenant_a"},
        },
        ("post", "/api/v1/credentials/{credential_id}/reconnect"): {
            "fields": {"api_key": "key_from_tenant_a"}
        },
        ("post", "/api/v1/users/{external_id}/installations"): {"flow_id": str(b["flow"].pk)},
        ("patch", "/api/v1/users/{external_id}/installations/{flow_id}"): {"enabled": False},
        ("post", "/api/v1/workflows/{workflow_id}/run"): {"input": {}},
    }


def _queries(b) -> dict[tuple[str, str], list[str]]:
    return {
        ("get", "/api/v1/credentials"): [
            f"user={b['user'].external_id}",
            f"app={b['private_app'].slug}",
        ],
        ("get", "/api/v1/users/{external_id}/installations"): [f"flow_id={b['flow'].pk}"],
        ("get", "/api/v1/runs"): [
            f"user={b['user'].external_id}",
            f"workflow={b['workflow'].public_id}",
            f"credential={b['credential'].pk}",
        ],
    }


def _expand(path: str, values: dict[str, list[str]]) -> list[str]:
    paths = [path]
    for name, options in values.items():
        token = "{" + name + "}"
        if any(token in p for p in paths):
            paths = [p.replace(token, option) for p in paths for option in options]
    return paths


def _requests(b):
    """Every (method, template, url, body, headers) to try, from the schema."""
    schema = ninja_api.get_openapi_schema()
    values, bodies, queries = _path_values(b), _bodies(b), _queries(b)
    header_sets = [
        {"X-Portal-Credential": str(b["credential"].pk)},
        {"X-Portal-Credential": str(b["private_credential"].pk)},
        {"X-Portal-User": b["user"].external_id},
    ]
    for template, methods in schema["paths"].items():
        for method, operation in methods.items():
            params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            unknown = set(params) - set(values)
            assert not unknown, f"{method} {template}: teach this test path parameter {unknown}"
            if "requestBody" in operation:
                assert (method, template) in bodies, (
                    f"teach this test a body for {method} {template}"
                )
            body = bodies.get((method, template))
            takes_headers = any(
                p["in"] == "header" and p["name"].startswith("X-Portal-")
                for p in operation.get("parameters", [])
            )
            for url in _expand(template, values):
                for query in queries.get((method, template), [""]):
                    full = f"{url}?{query}" if query else url
                    for headers in header_sets if takes_headers else [{}]:
                        yield method, template, full, body, headers


def test_tenant_a_gets_a_404_for_every_operation_on_tenant_bs_objects(api, tenant, b):
    markers = _markers(b)
    tried = set()
    versions_before = FlowVersion.objects.filter(flow=b["flow"]).count()

    # Operations that create A's own "b-user" go last, so the others meet no A user of that id.
    attempts = sorted(_requests(b), key=lambda r: (r[0], r[1]) in OWN_OBJECT_OPERATIONS)
    for method, template, url, body, headers in attempts:
        response = api.request(method, url, body, headers=headers)
        tried.add((method, template))
        text = response.content.decode()
        for marker in markers:
            assert marker not in text, f"{method} {url} showed B's {marker!r}: {text}"
        expected = OWN_OBJECT_OPERATIONS.get((method, template), {404})
        assert response.status_code in expected, (method, url, headers, text)
        if expected == {404} and method != "head":  # a HEAD answer has no body
            assert json.loads(text)["error"]["code"].endswith("not_found"), (method, url, text)

    assert len(tried) == sum(len(m) for m in ninja_api.get_openapi_schema()["paths"].values())
    user = EndUser.objects.get(pk=b["user"].pk)
    assert (user.email, user.name) == ("b-person@globex.test", "B Hidden Person")
    credential = Credential.objects.get(pk=b["credential"].pk)
    assert credential.status == Credential.Status.ACTIVE
    assert open_secret(credential) == {"api_key": B_SECRET}
    assert Installation.objects.get(pk=b["installation"].pk).enabled is True
    assert ConnectSession.objects.get(pk=b["session"].pk).revoked_at is None
    assert not Installation.objects.filter(tenant=tenant).exists()
    assert list(WorkflowRun.objects.values_list("pk", flat=True)) == [b["run"].pk]
    assert FlowVersion.objects.filter(flow=b["flow"]).count() == versions_before
    assert not Credential.objects.filter(tenant=tenant).exists()


def test_tenant_as_own_user_with_bs_id_is_a_separate_user(api, tenant, b):
    api.put("/api/v1/users/b-user", {"name": "A's own"})

    response = api.get("/api/v1/users/b-user")

    assert response.status_code == 200
    assert response.json()["name"] == "A's own"
    assert response.json()["integrations"] == {}
    assert EndUser.objects.filter(external_id="b-user").count() == 2

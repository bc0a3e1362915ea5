"""Trigger URLs: issued and rotated through the API, stored hashed, and refused with the reason
for a disabled installation or workflow and an expired or revoked account."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services.audit import Actor
from integrations.models import Credential, WorkflowRun, WorkflowTrigger
from integrations.services.installations import installation_install
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

SECRET = "key_triggersecret1234"


@pytest.fixture
def world(tenant, end_user, httpserver):
    app = factories.make_api_key_app(slug="crm", api_base_url=httpserver.url_for("/base"))
    flow = factories.make_flow(tenant=tenant, apps=[app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    workflow = factories.make_workflow(
        flow=flow,
        key="on-ping",
        trigger="url",
        steps=[
            {
                "name": "note",
                "app": "crm",
                "method": "POST",
                "path": "notes",
                "body": {"text": '{{ input.text | default:"ping" }}'},
            }
        ],
        response={"note": "{{ steps.note.body.id }}"},
    )
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": SECRET}, identity="ada@crm.test"
    )
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    httpserver.expect_request("/base/notes", method="POST").respond_with_json({"id": "n-1"})
    return {"workflow": workflow, "credential": credential, "installation": installation}


def _issue(api, world):
    return api.post(
        f"/api/v1/workflows/{world['workflow'].public_id}/trigger_url",
        headers={"X-Portal-Credential": str(world["credential"].pk)},
    )


def _hook_path(url: str) -> str:
    return url[url.index("/hooks/") :]


def test_the_api_issues_a_trigger_url_once_and_stores_only_its_hash(api, world):
    response = _issue(api, world)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["installation_id"] == str(world["installation"].pk)
    token = body["url"].rsplit("/", 1)[1]
    assert token.startswith("wt_") and len(token) >= 3 + 43  # 256 bits, base64url
    trigger = WorkflowTrigger.objects.get()
    assert token not in trigger.token_hash


def test_opening_the_trigger_url_queues_a_run_and_answers_202(
    api, world, httpserver, django_capture_on_commit_callbacks
):
    path = _hook_path(_issue(api, world).json()["url"])

    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(path, {"text": "hello"}, content_type="application/json")

    assert response.status_code == 202, response.content
    run = WorkflowRun.objects.get(pk=response.json()["run_id"])
    assert run.trigger == "url"
    assert run.status == "succeeded"
    assert run.output == {"note": "n-1"}
    # The step's request (the shared local server may also hold other tests' requests).
    [sent] = [request for request, _ in httpserver.log if request.path == "/base/notes"]
    assert (sent.method, sent.headers.get("Content-Type")) == ("POST", "application/json")
    assert json.loads(sent.data) == {"text": "hello"}
    get = Client().get(path + "?text=from-get")
    assert get.status_code == 202


def test_rotating_makes_the_old_url_stop_working(api, world):
    old = _hook_path(_issue(api, world).json()["url"])
    new = _hook_path(_issue(api, world).json()["url"])

    refused = Client().get(old)

    assert refused.status_code == 404
    assert error_of(refused)["code"] == "trigger_not_found"
    assert old != new
    assert WorkflowTrigger.objects.get().rotated_at is not None


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        ("installation", "installation_disabled"),
        ("workflow", "workflow_disabled"),
        ("revoked", "credential_revoked"),
        ("expired", "credential_expired"),
    ],
)
def test_a_trigger_url_is_refused_naming_the_reason_and_runs_nothing(
    api, world, httpserver, problem, code
):
    path = _hook_path(_issue(api, world).json()["url"])
    if problem == "installation":
        world["installation"].enabled = False
        world["installation"].save()
    elif problem == "workflow":
        world["workflow"].is_enabled = False
        world["workflow"].save()
    else:
        Credential.objects.filter(pk=world["credential"].pk).update(status=problem)

    response = Client().post(path)

    assert response.status_code == 422
    assert error_of(response)["code"] == code
    assert not WorkflowRun.objects.exists()
    assert httpserver.log == []


def test_a_request_triggered_workflow_has_no_trigger_url(api, world):
    world["workflow"].trigger = "request"
    world["workflow"].save()

    response = _issue(api, world)

    assert response.status_code == 422
    assert error_of(response)["code"] == "wrong_trigger"


def test_an_unknown_token_is_a_404(db):
    response = Client().get("/hooks/workflows/wt_" + "x" * 43)

    assert response.status_code == 404
    assert error_of(response)["code"] == "trigger_not_found"


def test_a_trigger_url_called_too_often_is_refused_and_runs_nothing(
    api, world, settings, django_capture_on_commit_callbacks
):
    # A day's window: a window turning over mid-test cannot hide the limit.
    settings.PORTAL_TRIGGER_URL_RATE_LIMIT = "2/d"
    path = _hook_path(_issue(api, world).json()["url"])

    with django_capture_on_commit_callbacks(execute=True):
        answers = [Client().post(path, {}, content_type="application/json") for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    error = error_of(answers[2])
    assert error["code"] == "rate_limited" and "no run was queued" in error["message"]
    assert int(answers[2]["Retry-After"]) >= 1
    assert WorkflowRun.objects.count() == 2
    # Counted per URL: a new URL (rotated) starts its own count.
    fresh = _hook_path(_issue(api, world).json()["url"])
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post(fresh, {}, content_type="application/json").status_code == 202

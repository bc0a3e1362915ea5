"""Running workflows through the API against a real local upstream (pytest-httpserver): the
mapped response, the account chosen, the run history, and every refusal."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from accounts.models import AuditLogEntry
from accounts.services.audit import Actor
from integrations.models import Credential, Event, WorkflowRun
from integrations.services.installations import installation_install, installation_update
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

SECRET_A = "key_workflowsecretA123"
SECRET_B = "key_workflowsecretB456"


@pytest.fixture
def app(httpserver):
    return factories.make_api_key_app(slug="crm", api_base_url=httpserver.url_for("/base"))


@pytest.fixture
def flow(tenant, app):
    flow = factories.make_flow(
        tenant=tenant,
        apps=[app],
        settings_schema={"type": "object", "properties": {"tag": {"type": "string"}}},
    )
    factories.make_deployment(tenant=tenant, flows=[flow])
    return flow


@pytest.fixture
def workflow(flow):
    return factories.make_workflow(
        flow=flow,
        key="create-contact",
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        steps=[
            {
                "name": "list",
                "app": "crm",
                "path": "contacts",
                "query": {"tag": "{{ settings.tag }}"},
            },
            {
                "name": "create",
                "app": "crm",
                "method": "POST",
                "path": "contacts",
                "body": {"name": "{{ input.name }}", "after": "{{ steps.list.body | length }}"},
            },
        ],
        response={
            "id": "{{ steps.create.body.id }}",
            "before": "{{ steps.list.body | length }}",
            "first": '{{ steps.list.body.0.name | default:"none" }}',
        },
    )


def _install(end_user, flow, credential, *, allow_multiple=False, settings=None):
    installation, _ = installation_install(
        end_user=end_user,
        flow=flow,
        credential=credential,
        allow_multiple=allow_multiple,
        settings=settings or {"tag": "vip"},
        actor=Actor.system(),
    )
    return installation


@pytest.fixture
def account_a(end_user, app):
    return factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": SECRET_A}, identity="a@crm.test"
    )


@pytest.fixture
def installed(end_user, flow, account_a, workflow):
    return _install(end_user, flow, account_a)


def _serve(httpserver, secret, contacts, created_id="c-9"):
    httpserver.expect_request(
        "/base/contacts", method="GET", headers={"X-API-Key": secret}, query_string="tag=vip"
    ).respond_with_json(contacts)
    httpserver.expect_request(
        "/base/contacts", method="POST", headers={"X-API-Key": secret}
    ).respond_with_json({"id": created_id}, status=201)


def _run(api, workflow, credential=None, body=None, **headers):
    if credential is not None:
        headers["X-Portal-Credential"] = str(credential.pk)
    return api.post(
        f"/api/v1/workflows/{workflow.public_id}/run",
        body if body is not None else {"input": {"name": "Ada"}},
        headers=headers,
    )


def test_a_request_triggered_run_answers_the_mapped_response(
    api, httpserver, installed, workflow, account_a
):
    _serve(httpserver, SECRET_A, [{"name": "Grace"}])

    response = _run(api, workflow, account_a)

    assert response.status_code == 200, response.content
    assert response.json() == {"id": "c-9", "before": 1, "first": "Grace"}
    run = WorkflowRun.objects.get(pk=response["X-Portal-Run"])
    assert run.status == WorkflowRun.Status.SUCCEEDED
    assert run.trigger == "request"
    assert [(s.name, s.method, s.path, s.status_code) for s in run.steps.all()] == [
        ("list", "GET", "contacts", 200),
        ("create", "POST", "contacts", 201),
    ]
    posted = json.loads(httpserver.log[1][0].data)
    assert posted == {"name": "Ada", "after": 1}
    event = Event.objects.get(type="workflow_run.succeeded")
    assert event.data["run_id"] == str(run.pk)
    assert event.data["credentials"] == {"crm": str(account_a.pk)}
    assert (
        AuditLogEntry.objects.filter(
            action="credential.use.proxy", credential_id=account_a.pk
        ).count()
        == 2
    )


def test_with_two_accounts_of_one_app_the_credential_header_picks_the_account_and_is_recorded(
    api, httpserver, end_user, flow, app, workflow, installed, account_a
):
    account_b = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": SECRET_B}, identity="b@crm.test"
    )
    _install(end_user, flow, account_b, allow_multiple=True)
    _serve(httpserver, SECRET_B, [], created_id="made-with-b")

    response = _run(api, workflow, account_b)

    assert response.status_code == 200, response.content
    assert response.json()["id"] == "made-with-b"
    assert all(req.headers["X-API-Key"] == SECRET_B for req, _ in httpserver.log)
    run_id = response["X-Portal-Run"]
    detail = api.get(f"/api/v1/runs/{run_id}").json()
    assert detail["credentials"] == {"crm": str(account_b.pk)}
    assert {step["credential_id"] for step in detail["steps"]} == {str(account_b.pk)}
    listed = api.get(f"/api/v1/runs?credential={account_b.pk}").json()["data"]
    assert [run["id"] for run in listed] == [run_id]
    assert api.get(f"/api/v1/runs?credential={account_a.pk}").json()["data"] == []
    # Two installations: naming only the user is ambiguous.
    ambiguous = _run(api, workflow, **{"X-Portal-User": end_user.external_id})
    assert error_of(ambiguous)["code"] == "ambiguous_installation"


def test_the_user_header_picks_the_users_only_installation(api, httpserver, installed, workflow):
    _serve(httpserver, SECRET_A, [])

    response = _run(api, workflow, **{"X-Portal-User": "user-1"})

    assert response.status_code == 200, response.content


def test_a_failing_step_answers_the_error_shape_naming_the_step_and_records_the_run(
    api, httpserver, installed, workflow, account_a
):
    httpserver.expect_request("/base/contacts", method="GET").respond_with_json([])
    httpserver.expect_request("/base/contacts", method="POST").respond_with_json(
        {"error": "quota", "api_key": SECRET_A, "echo": f"you sent {SECRET_A}"}, status=429
    )

    response = _run(api, workflow, account_a)

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "step_failed"
    assert "“create”" in error["message"]
    assert error["fields"]["step"] == "create"
    run = WorkflowRun.objects.get(pk=error["fields"]["run_id"])
    assert (run.status, run.failed_step) == ("failed", "create")
    step = run.steps.get(name="create")
    assert step.status_code == 429
    assert "quota" in step.response_excerpt
    assert SECRET_A not in step.response_excerpt
    assert Event.objects.filter(type="workflow_run.failed", data__run_id=str(run.pk)).exists()


def test_a_missing_template_value_fails_at_its_step(api, httpserver, flow, end_user, account_a):
    workflow = factories.make_workflow(
        flow=flow,
        steps=[{"name": "get", "app": "crm", "path": "contacts/{{ input.id }}"}],
    )
    _install(end_user, flow, account_a)

    response = _run(api, workflow, account_a, body={"input": {}})

    assert response.status_code == 502
    assert error_of(response)["code"] == "template_value_missing"
    assert error_of(response)["fields"]["step"] == "get"
    assert httpserver.log == []


def test_an_input_that_does_not_match_the_schema_is_refused_and_runs_nothing(
    api, httpserver, installed, workflow, account_a
):
    response = _run(api, workflow, account_a, body={"input": {"name": 3}})

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_input"
    assert not WorkflowRun.objects.exists()
    assert httpserver.log == []


@pytest.mark.parametrize("problem", ["workflow", "installation", "workflow_in_installation"])
def test_a_disabled_workflow_or_installation_is_refused_naming_the_reason(
    api, httpserver, installed, workflow, account_a, problem
):
    if problem == "workflow":
        workflow.is_enabled = False
        workflow.save()
    elif problem == "installation":
        installed.enabled = False
        installed.save()
    else:
        installation_update(installation=installed, enabled_workflows=[], actor=Actor.system())

    response = _run(api, workflow, account_a)

    assert response.status_code == 422
    assert (
        error_of(response)["code"]
        == {
            "workflow": "workflow_disabled",
            "installation": "installation_disabled",
            "workflow_in_installation": "workflow_disabled_for_installation",
        }[problem]
    )
    assert not WorkflowRun.objects.exists()
    assert httpserver.log == []


@pytest.mark.parametrize("status", ["expired", "revoked"])
def test_an_expired_or_revoked_credential_is_refused(
    api, httpserver, installed, workflow, account_a, status
):
    Credential.objects.filter(pk=account_a.pk).update(status=status)

    response = _run(api, workflow, account_a)

    assert response.status_code == 422
    assert error_of(response)["code"] == f"credential_{status}"
    assert str(account_a.pk) in error_of(response)["message"]
    assert not WorkflowRun.objects.exists()


def test_another_tenants_workflow_or_credential_is_a_404(
    api, other_tenant, httpserver, installed, workflow, account_a
):
    other_app = factories.make_api_key_app(slug="other-crm", api_base_url=httpserver.url_for("/b"))
    other_user = factories.make_end_user(tenant=other_tenant, external_id="user-1")
    other_flow = factories.make_flow(tenant=other_tenant, apps=[other_app])
    other_workflow = factories.make_workflow(
        flow=other_flow, steps=[{"name": "a", "app": "other-crm", "path": "x"}]
    )
    other_credential = factories.make_credential(end_user=other_user, app=other_app)

    foreign_workflow = _run(api, other_workflow, account_a)
    foreign_credential = _run(api, workflow, other_credential)

    assert foreign_workflow.status_code == 404
    assert error_of(foreign_workflow)["code"] == "workflow_not_found"
    assert foreign_credential.status_code == 404
    assert error_of(foreign_credential)["code"] == "credential_not_found"
    assert httpserver.log == []


def test_async_queues_the_run_and_answers_202_with_it(
    api, httpserver, installed, workflow, account_a, django_capture_on_commit_callbacks
):
    _serve(httpserver, SECRET_A, [])

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _run(api, workflow, account_a, body={"input": {"name": "Ada"}, "async": True})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["credentials"] == {"crm": str(account_a.pk)}
    assert httpserver.log == []
    # Tasks run in-process here (no broker): the job runs once the request's change commits.
    for callback in queued:
        callback()
    run = WorkflowRun.objects.get(pk=body["id"])
    assert run.status == WorkflowRun.Status.SUCCEEDED
    assert run.output == {"id": "c-9", "before": 0, "first": "none"}


def test_runs_are_listed_in_cursor_pages_with_filters(
    api, httpserver, installed, workflow, account_a
):
    _serve(httpserver, SECRET_A, [])
    ids = [_run(api, workflow, account_a)["X-Portal-Run"] for _ in range(3)]

    first = api.get("/api/v1/runs?limit=2").json()
    second = api.get(f"/api/v1/runs?limit=2&cursor={first['next_cursor']}").json()

    assert [run["id"] for run in first["data"] + second["data"]] == ids
    assert second["next_cursor"] is None
    assert len(api.get("/api/v1/runs?status=succeeded&user=user-1").json()["data"]) == 3
    assert api.get("/api/v1/runs?status=failed").json()["data"] == []
    assert len(api.get(f"/api/v1/runs?workflow={workflow.public_id}").json()["data"]) == 3
    assert api.get("/api/v1/runs?user=nobody").status_code == 404


def test_a_run_that_exceeds_the_time_limit_fails_with_504(
    api, httpserver, installed, workflow, account_a, settings
):
    settings.PORTAL_WORKFLOW_RUN_TIMEOUT_SECONDS = 0.5

    def slow(request):
        import time

        time.sleep(1.5)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/base/contacts", method="GET").respond_with_handler(slow)

    response = _run(api, workflow, account_a)

    assert response.status_code == 504
    assert error_of(response)["fields"]["step"] == "list"

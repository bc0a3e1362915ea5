"""What a workflow run refuses or survives: an input that would add path segments or break a
header line, templates that would render megabytes, an account shared by two installations,
an answer nothing foresaw; and what a trigger URL's holder (and the logs) never learn."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from werkzeug import Response

from accounts.services.audit import Actor
from core.errors import Invalid
from integrations.models import Installation, WorkflowRun
from integrations.services import workflow_runs
from integrations.services.installations import installation_install, installation_set_enabled
from integrations.services.workflow_triggers import workflow_trigger_issue
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

SECRET = "key_hardeningsecret123"


@pytest.fixture
def app(httpserver):
    return factories.make_api_key_app(slug="crm", api_base_url=httpserver.url_for("/base"))


@pytest.fixture
def flow(tenant, app):
    flow = factories.make_flow(tenant=tenant, apps=[app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    return flow


@pytest.fixture
def account(end_user, app):
    return factories.make_credential(end_user=end_user, app=app, secret={"api_key": SECRET})


def _workflow(flow, *, steps, response=None, **extra):
    return factories.make_workflow(flow=flow, steps=steps, response=response or {}, **extra)


def _install(end_user, flow, account):
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=account, actor=Actor.system()
    )
    return installation


def _run(api, workflow, account, data):
    return api.post(
        f"/api/v1/workflows/{workflow.public_id}/run",
        {"input": data},
        headers={"X-Portal-Credential": str(account.pk)},
    )


def test_a_path_value_is_one_segment_and_cannot_reach_another_resource(
    api, httpserver, end_user, flow, account
):
    workflow = _workflow(
        flow,
        steps=[
            {"name": "drop", "app": "crm", "method": "DELETE", "path": "contacts/{{ input.id }}"}
        ],
    )
    _install(end_user, flow, account)
    httpserver.expect_request("/base/contacts/c-1", method="DELETE").respond_with_json({})

    assert _run(api, workflow, account, {"id": "c-1"}).status_code == 200
    for sneaky in ("c-1/attachments/9", "..", ""):
        response = _run(api, workflow, account, {"id": sneaky})
        assert response.status_code == 422, response.content
        error = error_of(response)
        assert error["code"] == "invalid_step_input" and error["fields"]["step"] == "drop"
        assert "not one path segment" in error["message"]
    # (The local server is shared: other tests' requests may be in its log.)
    sent = [r.path for r, _ in httpserver.log if r.path.startswith("/base/contacts/")]
    assert sent == ["/base/contacts/c-1"]


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(
    api, httpserver, end_user, flow, account
):
    workflow = _workflow(
        flow,
        steps=[
            {"name": "tag", "app": "crm", "path": "tags", "headers": {"X-Tag": "{{ input.t }}"}}
        ],
    )
    _install(end_user, flow, account)

    response = _run(api, workflow, account, {"t": "a\r\nX-Admin: yes"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_step_input"
    assert not [r for r, _ in httpserver.log if r.path == "/base/tags"]


def test_templates_that_would_render_megabytes_stop_at_the_budget(
    api, settings, end_user, flow, account
):
    settings.PORTAL_WORKFLOW_RENDER_MAX_CHARS = 10_000
    workflow = _workflow(
        flow,
        steps=[],
        response={"copies": ["{{ input.s }}"] * 100},
    )
    _install(end_user, flow, account)

    assert _run(api, workflow, account, {"s": "x" * 50}).status_code == 200
    response = _run(api, workflow, account, {"s": "x" * 5_000})

    assert response.status_code == 422
    assert error_of(response)["code"] == "rendered_too_large"
    assert WorkflowRun.objects.filter(status="failed", error_code="rendered_too_large").count() == 1


def test_a_definition_with_too_many_holes_is_refused_when_saved(flow):
    with pytest.raises(Invalid) as refused:
        _workflow(flow, steps=[], response={"copies": ["{{ input.s }}"] * 501})
    assert "at most 500" in refused.value.message


def test_an_account_shared_by_two_installations_does_not_pick_one_at_random(
    api, httpserver, tenant, end_user, account
):
    crm = account.app
    mail = factories.make_api_key_app(slug="mail", api_base_url=httpserver.url_for("/mail"))
    flow = factories.make_flow(tenant=tenant, apps=[crm, mail])
    factories.make_deployment(tenant=tenant, flows=[flow])
    workflow = _workflow(flow, steps=[{"name": "me", "app": "mail", "path": "me"}])
    first_mail = factories.make_credential(end_user=end_user, app=mail)
    second_mail = factories.make_credential(end_user=end_user, app=mail)
    for mail_account in (first_mail, second_mail):
        installation_install(
            end_user=end_user,
            flow=flow,
            credential=mail_account,
            allow_multiple=True,
            actor=Actor.system(),
        )
    # Each installation took the user's only CRM account: both use it.
    assert Installation.objects.filter(credential_links__credential=account).count() == 2

    response = _run(api, workflow, account, {})

    assert response.status_code == 422
    assert error_of(response)["code"] == "ambiguous_installation"
    assert not WorkflowRun.objects.exists()


def test_an_answer_nothing_foresaw_fails_the_run_instead_of_leaving_it_running(
    api, httpserver, monkeypatch, end_user, flow, account
):
    workflow = _workflow(flow, steps=[{"name": "me", "app": "crm", "path": "me"}])
    _install(end_user, flow, account)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(workflow_runs, "proxy_forward", broken)
    response = _run(api, workflow, account, {})

    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    run = WorkflowRun.objects.get()
    assert (run.status, run.error_code, run.failed_step) == ("failed", "internal_error", "me")
    assert run.steps.count() == 1 and run.finished_at is not None


def test_an_upstream_answer_with_nan_is_kept_as_text_and_the_run_ends(
    api, httpserver, end_user, flow, account
):
    workflow = _workflow(
        flow,
        steps=[{"name": "me", "app": "crm", "path": "me"}],
        response={"b": "{{ steps.me.body }}"},
    )
    _install(end_user, flow, account)
    httpserver.expect_request("/base/me").respond_with_response(
        Response('{"score": NaN}', content_type="application/json")
    )

    response = _run(api, workflow, account, {})

    assert response.status_code == 200, response.content
    assert response.json() == {"b": '{"score": NaN}'}


def test_a_trigger_url_refusal_names_the_reason_but_no_ids_and_the_token_is_not_logged(
    end_user, flow, account, caplog
):
    workflow = _workflow(flow, steps=[{"name": "me", "app": "crm", "path": "me"}], trigger="url")
    installation = _install(end_user, flow, account)
    _, token = workflow_trigger_issue(workflow=workflow, installation=installation)
    installation_set_enabled(installation=installation, enabled=False, actor=Actor.system())

    with caplog.at_level(logging.DEBUG):
        refused = Client().post(f"/hooks/workflows/{token}")
        wrong_method = Client().put(f"/hooks/workflows/{token}")

    assert refused.status_code == 422
    error = error_of(refused)
    assert error["code"] == "installation_disabled"
    assert error["message"] == "This integration is switched off."
    assert end_user.external_id not in refused.content.decode()
    assert wrong_method.status_code == 405 and wrong_method["Allow"] == "GET, POST"
    assert token not in caplog.text

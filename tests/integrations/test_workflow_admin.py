"""Debugging workflows in the admin, and the redaction canary over runs, logs and admin pages.

The upstream echoes the account's key back in every shape it can (a field named like a secret,
inside text, in a header); no stored run, log line or admin page may show it.
"""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import AuditLogEntry, Membership
from accounts.services.audit import Actor
from core.tokens import hash_token
from integrations.models import WorkflowRun, WorkflowTrigger
from integrations.services.installations import installation_install
from integrations.services.workflow_runs import workflow_run_create, workflow_run_execute
from tests import factories

pytestmark = pytest.mark.django_db

CANARY = "key_canary_5ecr3t_never_shown_777"


@pytest.fixture
def staff(client, tenant):
    user = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(user)
    return client


@pytest.fixture
def world(tenant, end_user, httpserver):
    app = factories.make_api_key_app(slug="echo", api_base_url=httpserver.url_for("/api"))
    flow = factories.make_flow(tenant=tenant, apps=[app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    workflow = factories.make_workflow(
        flow=flow,
        key="echo-it",
        name="Echo it",
        steps=[
            {"name": "echo", "app": "echo", "path": "echo"},
            {"name": "boom", "app": "echo", "method": "POST", "path": "boom", "body": {}},
        ],
        response={"echoed": "{{ steps.echo.body }}"},
    )
    credential = factories.make_credential(
        end_user=end_user, app=app, secret={"api_key": CANARY}, identity="ada@echo.test"
    )
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    httpserver.expect_request("/api/echo").respond_with_json(
        {"token": CANARY, "note": f"you sent {CANARY} to us", "list": [CANARY]},
        headers={"X-Request-Id": CANARY},
    )
    httpserver.expect_request("/api/boom").respond_with_data(
        f"failed for key {CANARY}", status=500, content_type="text/plain"
    )
    return {"workflow": workflow, "installation": installation, "credential": credential}


def _failed_run(world) -> WorkflowRun:
    run = workflow_run_create(
        workflow=world["workflow"],
        installation=world["installation"],
        trigger=WorkflowRun.Trigger.REQUEST,
        data={"who": "Ada"},
    )
    return workflow_run_execute(run_id=run.pk)


def test_no_secret_of_the_credential_is_in_a_stored_run_a_log_or_an_admin_page(
    staff, world, caplog
):
    caplog.set_level(logging.DEBUG)
    run = _failed_run(world)

    assert run.status == WorkflowRun.Status.FAILED
    assert run.failed_step == "boom"
    stored = [
        str(value)
        for step in run.steps.all()
        for value in (step.response_excerpt, step.error_message, step.path)
    ]
    stored += [str(run.output), run.error_message, str(run.input), str(run.definition)]
    assert "you sent [redacted]" in run.steps.get(name="echo").response_excerpt
    assert "failed for key [redacted]" in run.steps.get(name="boom").response_excerpt
    assert all(CANARY not in text for text in stored), stored
    assert all(CANARY not in str(entry.detail) for entry in AuditLogEntry.objects.all())
    assert CANARY not in caplog.text
    pages = [
        reverse("admin:integrations_workflowrun_change", args=[run.pk]),
        reverse("admin:integrations_workflowrun_changelist"),
        reverse("admin:integrations_workflow_change", args=[world["workflow"].pk]),
        reverse("admin:integrations_installation_change", args=[world["installation"].pk]),
    ]
    for page in pages:
        response = staff.get(page)
        assert response.status_code == 200, page
        assert CANARY not in response.content.decode(), page


def test_the_run_page_shows_every_step_and_the_definition_read_only(staff, world):
    run = _failed_run(world)

    page = staff.get(reverse("admin:integrations_workflowrun_change", args=[run.pk]))

    text = page.content.decode()
    assert "Definition that ran" in text
    assert "&quot;boom&quot;" in text or '"boom"' in text
    assert "echo" in text and "500" in text
    assert 'name="_save"' not in text  # read-only


def test_staff_re_run_a_failed_run_with_the_same_input(
    staff, world, django_capture_on_commit_callbacks
):
    run = _failed_run(world)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            reverse("admin:integrations_workflowrun_changelist"),
            {"action": "rerun", "_selected_action": [str(run.pk)]},
        )

    assert response.status_code == 302
    rerun = WorkflowRun.objects.get(rerun_of=run)
    assert rerun.trigger == WorkflowRun.Trigger.RERUN
    assert rerun.input == {"who": "Ada"}
    assert rerun.status == WorkflowRun.Status.FAILED  # the upstream still fails
    assert rerun.steps.count() == 2


def test_another_tenants_run_is_a_404_for_staff(staff, world, other_tenant):
    run = _failed_run(world)
    WorkflowRun.objects.filter(pk=run.pk).update(tenant=other_tenant)

    response = staff.get(reverse("admin:integrations_workflowrun_change", args=[run.pk]))

    assert response.status_code == 404


def test_the_workflow_admin_refuses_a_hostile_definition_naming_the_step(staff, world):
    workflow = world["workflow"]

    response = staff.post(
        reverse("admin:integrations_workflow_change", args=[workflow.pk]),
        {
            "flow": str(workflow.flow_id),
            "key": workflow.key,
            "name": workflow.name,
            "description": "",
            "trigger": "request",
            "is_enabled": "on",
            "enabled_by_default": "on",
            "input_schema": "{}",
            "steps": '[{"name": "evil", "app": "echo", "path": "{{ input.__class__ }}"}]',
            "response": "{}",
            "runs-TOTAL_FORMS": "0",
            "runs-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "step “evil”.path" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.steps[0]["name"] == "echo"


def test_staff_issue_an_installations_trigger_url_shown_once_and_stored_hashed(staff, world):
    workflow = world["workflow"]
    workflow.trigger = "url"
    workflow.save()

    response = staff.post(
        reverse("admin:integrations_installation_changelist"),
        {"action": "issue_trigger_urls", "_selected_action": [str(world["installation"].pk)]},
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "/hooks/workflows/wt_" in text
    token = text.split("/hooks/workflows/")[1].split('"')[0].split()[0]
    trigger = WorkflowTrigger.objects.get(installation=world["installation"])
    assert trigger.token_hash == hash_token(token)
    listing = staff.get(reverse("admin:integrations_workflowtrigger_changelist"))
    assert listing.status_code == 200
    assert token not in listing.content.decode()


def test_re_running_a_run_that_did_not_fail_says_so_and_starts_nothing(staff, world):
    run = _failed_run(world)
    WorkflowRun.objects.filter(pk=run.pk).update(status=WorkflowRun.Status.SUCCEEDED)

    response = staff.post(
        reverse("admin:integrations_workflowrun_changelist"),
        {"action": "rerun", "_selected_action": [str(run.pk)]},
        follow=True,
    )

    said = [str(message) for message in response.context["messages"]]
    assert said == [f"{run.pk}: only a failed run is re-run (this one succeeded)"]
    assert not WorkflowRun.objects.filter(rerun_of=run).exists()


def test_publishing_a_flow_whose_workflow_cannot_run_says_why_and_freezes_nothing(staff, world):
    flow = world["workflow"].flow
    versions = flow.versions.count()
    flow.apps.clear()

    response = staff.post(
        reverse("admin:integrations_flow_changelist"),
        {"action": "publish", "_selected_action": [str(flow.pk)]},
        follow=True,
    )

    said = " ".join(str(message) for message in response.context["messages"])
    assert "cannot be published" in said and world["workflow"].key in said
    assert flow.versions.count() == versions

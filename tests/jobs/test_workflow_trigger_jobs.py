"""A URL-triggered workflow on the sandbox provider, run by a real Celery worker on Redis: it
reads the sandbox account's items and creates one from the trigger input."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services.audit import Actor
from integrations.models import Event, WorkflowRun
from integrations.services.installations import installation_install
from integrations.services.workflow_triggers import workflow_trigger_issue
from sandbox.models import SandboxItem
from sandbox.services import sandbox_api_key_create
from tests import factories
from tests.jobs.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def test_a_url_triggered_run_is_queued_and_completed_by_a_real_worker(
    broker, tenant, end_user, api_key_app, alice
):
    _, key = sandbox_api_key_create(account=alice, name="workflow")
    credential = factories.make_credential(
        end_user=end_user, app=api_key_app, secret={"api_key": key}, identity=alice.email
    )
    flow = factories.make_flow(tenant=tenant, apps=[api_key_app])
    factories.make_deployment(tenant=tenant, flows=[flow])
    workflow = factories.make_workflow(
        flow=flow,
        key="add-item",
        trigger="url",
        steps=[
            {"name": "items", "app": api_key_app.slug, "path": "items"},
            {
                "name": "create",
                "app": api_key_app.slug,
                "method": "POST",
                "path": "items",
                "body": {"title": "{{ input.title }}"},
            },
        ],
        response={"before": "{{ steps.items.body | length }}", "id": "{{ steps.create.body.id }}"},
    )
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    _, token = workflow_trigger_issue(workflow=workflow, installation=installation)
    before = SandboxItem.objects.filter(account=alice).count()

    response = Client().post(
        f"/hooks/workflows/{token}",
        {"title": "From the trigger URL"},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    assert WorkflowRun.objects.get(pk=run_id).status == "queued"

    with broker.worker():
        run = wait_until(
            lambda: WorkflowRun.objects.filter(
                pk=run_id, status__in=["succeeded", "failed"]
            ).first(),
            what="the worker to finish the run",
        )

    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert run.output["before"] == before
    item = SandboxItem.objects.get(account=alice, title="From the trigger URL")
    assert item.title == "From the trigger URL"
    assert run.output["id"] == str(item.pk)
    assert run.credentials_used.get().credential_id == credential.pk
    assert Event.objects.filter(type="workflow_run.succeeded", data__run_id=run_id).exists()
    assert key not in str(list(run.steps.values_list("response_excerpt", flat=True)))

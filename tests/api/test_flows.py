"""Flows through the API: listed with their apps, workflows (the ids the run endpoint takes)
and newest version, and published as a new version that moves or marks installations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services.audit import Actor
from integrations.models import Event, FlowVersion
from integrations.services.installations import installation_install
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(db):
    return factories.make_api_key_app(slug="crm")


@pytest.fixture
def flow(tenant, crm):
    flow = factories.make_flow(
        tenant=tenant,
        apps=[crm],
        name="CRM sync",
        settings_schema={"type": "object", "properties": {"tag": {"type": "string"}}},
    )
    factories.make_deployment(tenant=tenant, flows=[flow])
    factories.make_workflow(
        flow=flow,
        key="add-note",
        trigger="url",
        steps=[{"name": "note", "app": "crm", "method": "POST", "path": "notes"}],
    )
    return flow


def test_flows_are_listed_with_their_apps_workflows_and_version(api, flow, crm):
    factories.make_flow(tenant=flow.tenant, apps=[crm], name="Draft one", published=False)

    response = api.get("/api/v1/flows")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [f["name"] for f in body["data"]] == ["CRM sync", "Draft one"]
    listed = body["data"][0]
    workflow = flow.workflows.get()
    assert listed["id"] == str(flow.pk) and listed["status"] == "published"
    assert listed["apps"] == ["crm"] and listed["version"] is None
    assert listed["workflows"] == [
        {
            "id": str(workflow.public_id),
            "key": "add-note",
            "name": workflow.name,
            "description": "",
            "trigger": "url",
            "enabled": True,
            "enabled_by_default": workflow.enabled_by_default,
            "input_schema": workflow.input_schema,
        }
    ]
    assert body["next_cursor"] is None
    assert api.get(f"/api/v1/flows/{flow.pk}").json() == listed


def test_listing_costs_the_same_queries_for_one_flow_or_ten(api, tenant, flow, crm):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/api/v1/flows?limit=100").status_code == 200
        return len(captured)

    queries()  # the key's first use of the day records it
    one = queries()
    for n in range(9):
        more = factories.make_flow(tenant=tenant, apps=[crm], name=f"Flow {n}")
        factories.make_workflow(
            flow=more, steps=[{"name": "a", "app": "crm", "path": "x"}], key=f"w-{n}"
        )
    assert queries() == one


def test_publishing_moves_installations_that_need_nothing_and_marks_the_others(
    api, tenant, end_user, flow, crm
):
    first = api.post(f"/api/v1/flows/{flow.pk}/publish")
    assert first.status_code == 201, first.content
    assert first.json() == {"flow_id": str(flow.pk), "version": 1, "moved": 0, "needs_update": 0}
    credential = factories.make_credential(end_user=end_user, app=crm)
    installation, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=Actor.system()
    )
    flow.settings_schema = {
        "type": "object",
        "properties": {"tag": {"type": "string"}, "region": {"type": "string"}},
        "required": ["region"],
    }
    flow.save()

    second = api.post(f"/api/v1/flows/{flow.pk}/publish")

    assert second.json() == {"flow_id": str(flow.pk), "version": 2, "moved": 0, "needs_update": 1}
    installation.refresh_from_db()
    assert installation.flow_version.number == 1 and installation.pending_version.number == 2
    assert Event.objects.filter(type="installation.needs_update").count() == 1
    assert api.get(f"/api/v1/flows/{flow.pk}").json()["version"] == 2
    assert FlowVersion.objects.filter(flow=flow).count() == 2


def test_an_unknown_flow_is_a_404_and_publishes_nothing(api, other_tenant, crm):
    theirs = factories.make_flow(tenant=other_tenant, apps=[crm])

    for path in (f"/api/v1/flows/{theirs.pk}", f"/api/v1/flows/{theirs.pk}/publish"):
        method = "post" if path.endswith("publish") else "get"
        response = api.request(method, path)
        assert response.status_code == 404
        assert error_of(response)["code"] == "flow_not_found"
    assert not FlowVersion.objects.exists()


def test_a_flow_whose_workflow_calls_a_removed_app_is_not_published(api, flow, crm):
    # The workflow was saved while "crm" was one of the flow's apps; staff removed it since.
    flow.apps.remove(crm)

    response = api.post(f"/api/v1/flows/{flow.pk}/publish")

    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "workflow_invalid"
    assert "add-note" in error["message"] and "crm" in error["message"]
    assert not FlowVersion.objects.filter(flow=flow).exists()

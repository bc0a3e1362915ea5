"""Flow versions: publishing freezes a version; a lazy update moves installations at once and
keeps their settings; a breaking one marks them, they keep running their version, and giving
what is missing moves them. Runs always use the installation's version."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.services.audit import Actor
from core.errors import Invalid
from integrations.models import Event, FlowVersion, Installation, WorkflowRun
from integrations.services.installations import (
    flow_publish,
    installation_credential_replace,
    installation_install,
    installation_update,
)
from integrations.services.workflow_runs import (
    WorkflowRefused,
    workflow_run_create,
    workflow_run_execute,
)
from tests import factories

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()


@pytest.fixture
def app(httpserver):
    return factories.make_api_key_app(slug="crm", api_base_url=httpserver.url_for("/api"))


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
        flow=flow, key="ping", steps=[{"name": "ping", "app": "crm", "path": "v1/ping"}]
    )


@pytest.fixture
def installation(end_user, flow, app, workflow):
    flow_publish(flow=flow, actor=SYSTEM)
    credential = factories.make_credential(end_user=end_user, app=app)
    installed, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, settings={"tag": "vip"}, actor=SYSTEM
    )
    return installed


def _events(type_):
    return list(Event.objects.filter(type=type_).order_by("created_at"))


def test_publishing_freezes_a_numbered_version_and_new_installations_run_it(flow, installation):
    version = FlowVersion.objects.get(flow=flow)

    assert version.number == 1
    assert version.apps == ["crm"]
    assert version.workflows["ping"]["steps"][0]["path"] == "v1/ping"
    assert installation.flow_version == version


def test_a_flow_marked_published_without_a_version_gets_its_first_when_installed(
    end_user, flow, app, workflow
):
    assert not flow.versions.exists()  # published by its status alone, as seeded data may be
    credential = factories.make_credential(end_user=end_user, app=app)

    installed, _ = installation_install(
        end_user=end_user, flow=flow, credential=credential, actor=SYSTEM
    )

    version = FlowVersion.objects.get(flow=flow)
    assert version.number == 1 and version.workflows["ping"]["steps"][0]["path"] == "v1/ping"
    assert installed.flow_version == version
    run = workflow_run_create(workflow=workflow, installation=installed, trigger="request", data={})
    assert run.flow_version == 1


def test_a_lazy_update_moves_installations_and_keeps_their_settings(flow, installation):
    flow.settings_schema = {
        "type": "object",
        "properties": {"tag": {"type": "string"}, "limit": {"type": "integer", "default": 10}},
    }
    flow.save()

    version = flow_publish(flow=flow, actor=SYSTEM)

    installation.refresh_from_db()
    assert installation.flow_version == version
    assert installation.pending_version is None
    assert installation.settings == {"tag": "vip", "limit": 10}
    updated = _events("installation.updated")[-1]
    assert updated.data["installation_id"] == str(installation.pk)
    assert updated.data["flow_version"] == 2
    assert not _events("installation.needs_update")


def test_a_breaking_update_marks_installations_which_keep_running_their_version(
    flow, workflow, installation, httpserver
):
    flow.settings_schema = {
        "type": "object",
        "properties": {"tag": {"type": "string"}, "region": {"type": "string"}},
        "required": ["region"],
    }
    flow.save()
    workflow.steps = [{"name": "ping", "app": "crm", "path": "v2/ping"}]
    workflow.save()

    flow_publish(flow=flow, actor=SYSTEM)

    installation.refresh_from_db()
    assert installation.flow_version.number == 1
    assert installation.pending_version.number == 2
    assert installation.needs_action == {"apps": [], "settings": ["region"]}
    marked = _events("installation.needs_update")[-1]
    assert marked.data["missing"] == {"apps": [], "settings": ["region"]}
    assert marked.data["pending_version"] == 2

    httpserver.expect_request("/api/v1/ping").respond_with_json({"v": 1})
    httpserver.expect_request("/api/v2/ping").respond_with_json({"v": 2})
    old = _run(workflow, installation)
    assert (old.status, old.flow_version) == ("succeeded", 1)
    assert old.steps.get().path == "v1/ping"

    installation_update(
        installation=installation, settings={"tag": "vip", "region": "eu"}, actor=SYSTEM
    )

    installation.refresh_from_db()
    assert installation.flow_version.number == 2
    assert installation.pending_version is None
    assert installation.needs_action == {}
    assert _events("installation.updated")[-1].data["flow_version"] == 2
    new = _run(workflow, installation)
    assert (new.status, new.flow_version) == ("succeeded", 2)
    assert new.steps.get().path == "v2/ping"


def test_a_new_app_is_a_breaking_update_until_the_user_connects_an_account_for_it(
    tenant, end_user, flow, installation
):
    mail = factories.make_api_key_app(slug="mail")
    flow.apps.add(mail)

    flow_publish(flow=flow, actor=SYSTEM)

    installation.refresh_from_db()
    assert installation.needs_action == {"apps": ["mail"], "settings": []}
    account = factories.make_credential(end_user=end_user, app=mail)
    installation_install(end_user=end_user, flow=flow, credential=account, actor=SYSTEM)
    installation.refresh_from_db()
    assert installation.flow_version.number == 2
    assert installation.pending_version is None
    assert Installation.objects.filter(flow=flow).count() == 1


def test_with_several_installations_allowed_the_new_apps_account_completes_the_waiting_one(
    tenant, end_user, flow, installation
):
    # The modal installs with allow_multiple: the account connected for the new app must go to
    # the installation waiting for it, not start a second installation of the flow.
    mail = factories.make_api_key_app(slug="mail")
    flow.apps.add(mail)
    flow_publish(flow=flow, actor=SYSTEM)
    account = factories.make_credential(end_user=end_user, app=mail)

    got, created = installation_install(
        end_user=end_user, flow=flow, credential=account, allow_multiple=True, actor=SYSTEM
    )

    assert (got.pk, created) == (installation.pk, False)
    installation.refresh_from_db()
    assert installation.flow_version.number == 2 and installation.pending_version is None
    assert Installation.objects.filter(flow=flow).count() == 1
    # A second account for an app the installation already has still starts a new one.
    other = factories.make_credential(end_user=end_user, app=mail)
    _, created = installation_install(
        end_user=end_user, flow=flow, credential=other, allow_multiple=True, actor=SYSTEM
    )
    assert created and Installation.objects.filter(flow=flow).count() == 2


def test_a_workflow_removed_in_the_installations_version_is_refused(flow, workflow, installation):
    added = factories.make_workflow(
        flow=flow, key="later", steps=[{"name": "a", "app": "crm", "path": "x"}]
    )
    installation.enabled_workflows.add(added)

    with pytest.raises(WorkflowRefused) as refused:
        workflow_run_create(workflow=added, installation=installation, trigger="request", data={})
    assert refused.value.code == "workflow_not_in_version"


def _run(workflow, installation) -> WorkflowRun:
    run = workflow_run_create(
        workflow=workflow, installation=installation, trigger="request", data={}
    )
    return workflow_run_execute(run_id=run.pk)


def _change_form_data(response) -> dict:
    """What the admin's change form would post back unchanged: the form and its inlines."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            key = form.add_prefix(name)
            if isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif isinstance(value, dict):
                data[key] = json.dumps(value)
            else:
                data[key] = value
    return data


def test_publishing_in_the_admins_form_freezes_the_first_version_with_its_workflows(
    admin_client, flow, workflow
):
    flow.status = "draft"
    flow.save()
    url = reverse("admin:integrations_flow_change", args=[flow.pk])
    data = _change_form_data(admin_client.get(url))
    data["status"] = "published"

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    version = FlowVersion.objects.get(flow=flow)
    assert version.number == 1 and set(version.workflows) == {"ping"}
    admin_client.post(url, data)  # saved again: no new version without the publish action
    assert FlowVersion.objects.filter(flow=flow).count() == 1


def test_publishing_in_the_form_a_flow_whose_workflow_cannot_run_saves_a_draft(
    admin_client, flow, workflow
):
    flow.status = "draft"
    flow.save()
    url = reverse("admin:integrations_flow_change", args=[flow.pk])
    data = _change_form_data(admin_client.get(url))
    data["status"] = "published"
    other = factories.make_api_key_app(slug="other")
    data["apps"] = [str(other.pk)]  # the workflow's step calls "crm", no longer an app here

    response = admin_client.post(url, data, follow=True)

    said = " ".join(str(message) for message in response.context["messages"])
    assert "Saved as a draft" in said and "ping" in said
    flow.refresh_from_db()
    assert flow.status == "draft"
    assert not FlowVersion.objects.filter(flow=flow).exists()


def test_a_change_from_a_copy_read_before_a_publish_keeps_that_publishs_offer(
    end_user, flow, installation
):
    # Version 2 waits for a "mail" account. The end user's request read the installation, then
    # staff published version 3 (waiting for a "files" account too) before the request saved
    # the mail account: the request must not move the installation to 2 and drop 3's offer.
    mail = factories.make_api_key_app(slug="mail")
    flow.apps.add(mail)
    flow_publish(flow=flow, actor=SYSTEM)
    stale = Installation.objects.select_related("flow", "end_user").get(pk=installation.pk)
    assert stale.pending_version.number == 2
    files = factories.make_api_key_app(slug="files")
    flow.apps.add(files)
    flow_publish(flow=flow, actor=SYSTEM)

    account = factories.make_credential(end_user=end_user, app=mail)
    installation_credential_replace(installation=stale, credential=account, actor=SYSTEM)

    installation.refresh_from_db()
    assert installation.flow_version.number == 1
    assert installation.pending_version.number == 3
    assert installation.needs_action == {"apps": ["files"], "settings": []}


def test_settings_are_checked_against_the_installations_version_not_the_draft(flow, installation):
    # An unpublished edit of the schema does not apply to installations yet.
    flow.settings_schema = {
        "type": "object",
        "properties": {"tag": {"type": "integer"}},
        "required": ["tag"],
    }
    flow.save()

    installation_update(installation=installation, settings={"tag": "silver"}, actor=SYSTEM)

    installation.refresh_from_db()
    assert installation.settings == {"tag": "silver"}
    with pytest.raises(Invalid) as refused:
        installation_update(installation=installation, settings={"tag": 3}, actor=SYSTEM)
    assert refused.value.code == "invalid_settings"

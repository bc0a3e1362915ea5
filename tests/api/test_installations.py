"""The installations API: install (409 without allow_multiple, replacing an account keeps
settings), disabled until complete, update settings and workflows, uninstall all or one."""

from __future__ import annotations

import pytest

from integrations.models import Event, Installation, Workflow
from tests import factories
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

SETTINGS_SCHEMA = {
    "type": "object",
    "properties": {
        "direction": {"type": "string", "enum": ["import", "export"], "default": "import"},
        "interval": {"type": "integer", "minimum": 5, "default": 60},
    },
    "required": ["direction"],
}


@pytest.fixture
def crm(db):
    return factories.make_api_key_app(slug="crm")


@pytest.fixture
def mail(db):
    return factories.make_api_key_app(slug="mail")


@pytest.fixture
def flow(tenant, crm):
    flow = factories.make_flow(tenant=tenant, apps=[crm], settings_schema=SETTINGS_SCHEMA)
    Workflow.objects.create(flow=flow, key="sync", name="Sync", enabled_by_default=True)
    Workflow.objects.create(flow=flow, key="export", name="Export", enabled_by_default=False)
    factories.make_deployment(tenant=tenant, flows=[flow])
    return flow


@pytest.fixture
def two_app_flow(tenant, crm, mail):
    flow = factories.make_flow(tenant=tenant, apps=[crm, mail])
    factories.make_deployment(tenant=tenant, flows=[flow])
    return flow


def _path(flow=None):
    base = "/api/v1/users/user-1/installations"
    return f"{base}/{flow.pk}" if flow is not None else base


def test_installing_with_an_account_creates_an_enabled_installation_with_defaults(
    api, end_user, crm, flow
):
    credential = factories.make_credential(end_user=end_user, app=crm)

    response = api.post(_path(), {"flow_id": str(flow.pk), "credential_id": str(credential.pk)})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["enabled"] is True
    assert body["flow_id"] == str(flow.pk)
    assert body["user"] == "user-1"
    assert body["settings"] == {"direction": "import", "interval": 60}
    assert body["enabled_workflows"] == ["sync"]
    assert body["credentials"] == {"crm": str(credential.pk)}
    assert Event.objects.filter(type="installation.created").count() == 1


def test_installing_an_installed_flow_again_without_allow_multiple_is_a_409(
    api, end_user, crm, flow
):
    factories.make_credential(end_user=end_user, app=crm)
    assert api.post(_path(), {"flow_id": str(flow.pk)}).status_code == 201

    again = api.post(_path(), {"flow_id": str(flow.pk)})

    assert again.status_code == 409
    assert error_of(again)["code"] == "already_installed"
    assert Installation.objects.filter(end_user=end_user).count() == 1


def test_allow_multiple_installs_the_flow_again_for_another_account(api, end_user, crm, flow):
    first = factories.make_credential(end_user=end_user, app=crm, identity="a@crm.test")
    second = factories.make_credential(end_user=end_user, app=crm, identity="b@crm.test")
    api.post(_path(), {"flow_id": str(flow.pk), "credential_id": str(first.pk)})

    response = api.post(
        _path(),
        {"flow_id": str(flow.pk), "credential_id": str(second.pk), "allow_multiple": True},
    )

    assert response.status_code == 201
    assert Installation.objects.filter(end_user=end_user, flow=flow).count() == 2
    same_account = api.post(
        _path(),
        {"flow_id": str(flow.pk), "credential_id": str(second.pk), "allow_multiple": True},
    )
    assert same_account.status_code == 409


def test_a_new_credential_id_replaces_the_account_and_keeps_settings_and_workflows(
    api, end_user, crm, flow
):
    old = factories.make_credential(end_user=end_user, app=crm, identity="old@crm.test")
    new = factories.make_credential(end_user=end_user, app=crm, identity="new@crm.test")
    installed = api.post(_path(), {"flow_id": str(flow.pk), "credential_id": str(old.pk)}).json()
    api.patch(
        _path(flow),
        {"settings": {"direction": "export", "interval": 15}, "enabled_workflows": ["export"]},
    )

    response = api.post(_path(), {"flow_id": str(flow.pk), "credential_id": str(new.pk)})

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == installed["id"]
    assert body["credentials"] == {"crm": str(new.pk)}
    assert body["settings"] == {"direction": "export", "interval": 15}
    assert body["enabled_workflows"] == ["export"]


def test_an_installation_stays_disabled_until_every_app_has_an_account(
    api, end_user, crm, mail, two_app_flow
):
    crm_account = factories.make_credential(end_user=end_user, app=crm)
    installed = api.post(
        _path(), {"flow_id": str(two_app_flow.pk), "credential_id": str(crm_account.pk)}
    )
    assert installed.status_code == 201
    assert installed.json()["enabled"] is False

    refused = api.patch(_path(two_app_flow), {"enabled": True})
    assert refused.status_code == 422
    assert error_of(refused)["code"] == "installation_incomplete"
    assert "Mail" in error_of(refused)["message"]

    mail_account = factories.make_credential(end_user=end_user, app=mail)
    api.post(_path(), {"flow_id": str(two_app_flow.pk), "credential_id": str(mail_account.pk)})
    api.patch(_path(two_app_flow), {"enabled": False})
    enabled = api.patch(_path(two_app_flow), {"enabled": True})

    assert enabled.status_code == 200
    assert enabled.json()["enabled"] is True
    assert enabled.json()["credentials"] == {
        "crm": str(crm_account.pk),
        "mail": str(mail_account.pk),
    }


def test_settings_are_validated_against_the_flows_schema_and_a_refusal_changes_nothing(
    api, end_user, crm, flow
):
    factories.make_credential(end_user=end_user, app=crm)
    api.post(_path(), {"flow_id": str(flow.pk)})

    response = api.patch(
        _path(flow),
        {"settings": {"direction": "sideways"}, "enabled_workflows": ["export"], "enabled": False},
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_settings"
    assert "direction" in error["fields"]
    current = api.get(_path(flow)).json()
    assert current["settings"] == {"direction": "import", "interval": 60}
    assert current["enabled_workflows"] == ["sync"]
    assert current["enabled"] is True


def test_unknown_workflows_are_refused(api, end_user, crm, flow):
    factories.make_credential(end_user=end_user, app=crm)
    api.post(_path(), {"flow_id": str(flow.pk)})

    response = api.patch(_path(flow), {"enabled_workflows": ["teleport"]})

    assert response.status_code == 422
    assert error_of(response)["code"] == "unknown_workflow"


def test_settings_and_workflows_are_updated(api, end_user, crm, flow):
    factories.make_credential(end_user=end_user, app=crm)
    api.post(_path(), {"flow_id": str(flow.pk)})

    response = api.patch(
        _path(flow), {"settings": {"direction": "export"}, "enabled_workflows": ["sync", "export"]}
    )

    assert response.status_code == 200
    assert response.json()["settings"] == {"direction": "export", "interval": 60}
    assert response.json()["enabled_workflows"] == ["export", "sync"]


def test_several_installations_of_a_flow_are_told_apart_by_x_portal_credential(
    api, end_user, crm, flow
):
    first = factories.make_credential(end_user=end_user, app=crm, identity="a@crm.test")
    second = factories.make_credential(end_user=end_user, app=crm, identity="b@crm.test")
    for credential in (first, second):
        api.post(
            _path(),
            {"flow_id": str(flow.pk), "credential_id": str(credential.pk), "allow_multiple": True},
        )

    ambiguous = api.get(_path(flow))
    chosen = api.get(_path(flow), headers={"X-Portal-Credential": str(second.pk)})
    listed = api.get(_path()).json()

    assert ambiguous.status_code == 422
    assert error_of(ambiguous)["code"] == "ambiguous_installation"
    assert chosen.status_code == 200
    assert chosen.json()["credentials"] == {"crm": str(second.pk)}
    assert [i["credentials"]["crm"] for i in listed] == [str(first.pk), str(second.pk)]


def test_uninstalling_with_x_portal_credential_removes_only_that_accounts_installation(
    api, end_user, crm, flow
):
    first = factories.make_credential(end_user=end_user, app=crm, identity="a@crm.test")
    second = factories.make_credential(end_user=end_user, app=crm, identity="b@crm.test")
    for credential in (first, second):
        api.post(
            _path(),
            {"flow_id": str(flow.pk), "credential_id": str(credential.pk), "allow_multiple": True},
        )

    response = api.delete(_path(flow), headers={"X-Portal-Credential": str(first.pk)})

    assert response.status_code == 204
    remaining = Installation.objects.filter(end_user=end_user, flow=flow)
    assert [i.credential_links.get().credential_id for i in remaining] == [second.pk]
    assert Event.objects.filter(type="installation.deleted").count() == 1


def test_uninstalling_without_the_header_removes_every_installation_of_the_flow(
    api, end_user, crm, flow
):
    for identity in ("a@crm.test", "b@crm.test"):
        credential = factories.make_credential(end_user=end_user, app=crm, identity=identity)
        api.post(
            _path(),
            {"flow_id": str(flow.pk), "credential_id": str(credential.pk), "allow_multiple": True},
        )

    response = api.delete(_path(flow))
    again = api.delete(_path(flow))

    assert response.status_code == 204
    assert not Installation.objects.filter(end_user=end_user).exists()
    assert again.status_code == 404
    assert error_of(again)["code"] == "not_installed"


def test_a_flow_outside_an_active_deployment_cannot_be_installed(api, end_user, tenant, crm):
    draft = factories.make_flow(tenant=tenant, apps=[crm], published=False)
    factories.make_deployment(tenant=tenant, flows=[draft])

    response = api.post(_path(), {"flow_id": str(draft.pk)})

    assert response.status_code == 422
    assert error_of(response)["code"] == "flow_not_available"


def test_another_users_credential_is_a_404(api, tenant, end_user, crm, flow):
    someone = factories.make_end_user(tenant=tenant, external_id="someone")
    theirs = factories.make_credential(end_user=someone, app=crm)

    response = api.post(_path(), {"flow_id": str(flow.pk), "credential_id": str(theirs.pk)})

    assert response.status_code == 404
    assert not Installation.objects.exists()


def test_a_malformed_x_portal_credential_is_a_422(api, end_user, crm, flow):
    factories.make_credential(end_user=end_user, app=crm)
    api.post(_path(), {"flow_id": str(flow.pk)})

    response = api.get(_path(flow), headers={"X-Portal-Credential": "nope"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_credential_id"

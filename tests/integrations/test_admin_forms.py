"""The admin's forms staff fill in: webhook endpoints choose event types from the registry with
checkboxes, a one-tenant staff member finds their tenant chosen, and JSON fields say what is
wrong and on which line."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership
from integrations.models import Flow, WebhookEndpoint
from integrations.services.events import EVENT_TYPES
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, tenant):
    user = get_user_model().objects.create_user(
        username="grace@acme.test", email="grace@acme.test", password="pw", is_staff=True
    )
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(user)
    return user


def _errors(page: str) -> str:
    """The text of the page's error lists, as staff read it."""
    lists = "".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>.*?</ul>', page, re.S))
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", lists).split()))


def test_a_new_endpoint_offers_each_known_event_type_as_a_checkbox_and_the_only_tenant(
    client, tenant, other_tenant, staff
):
    page = client.get(reverse("admin:integrations_webhookendpoint_add")).content.decode()

    for name in EVENT_TYPES:
        assert re.search(
            rf'<input type="checkbox" name="event_types" value="{re.escape(name)}"', page
        )
    assert re.search(rf'<option value="{tenant.pk}" selected>', page)
    assert other_tenant.name not in page


def test_the_chosen_event_types_are_saved_in_the_registrys_order(client, tenant, staff):
    response = client.post(
        reverse("admin:integrations_webhookendpoint_add"),
        {
            "tenant": tenant.pk,
            "url": "https://hooks.acme.test/portal",
            "is_active": "on",
            "event_types": ["credential.expired", "credential.created"],
        },
    )

    assert response.status_code == 200  # the page that shows the new secret once
    endpoint = WebhookEndpoint.objects.get(tenant=tenant)
    assert endpoint.event_types == ["credential.created", "credential.expired"]


def test_an_unknown_event_type_is_refused_and_nothing_is_saved(client, tenant, staff):
    response = client.post(
        reverse("admin:integrations_webhookendpoint_add"),
        {
            "tenant": tenant.pk,
            "url": "https://hooks.acme.test/",
            "event_types": ["credential.exploded"],
        },
    )

    assert "credential.exploded is not one of the available choices" in _errors(
        response.content.decode()
    )
    assert not WebhookEndpoint.objects.exists()


@pytest.fixture
def flow(tenant):
    return factories.make_flow(tenant=tenant, apps=[factories.make_api_key_app()], name="CRM sync")


def _save_schema(client, flow, text):
    url = reverse("admin:integrations_flow_change", args=[flow.pk])
    return client.post(
        url,
        {
            "tenant": flow.tenant_id,
            "name": flow.name,
            "status": flow.status,
            "apps": [app.pk for app in flow.apps.all()],
            "settings_schema": text,
            "workflows-TOTAL_FORMS": "0",
            "workflows-INITIAL_FORMS": "0",
        },
    )


def test_a_settings_schema_that_is_not_json_names_the_line_and_column(client, flow, staff):
    text = '{\n  "type": "object",\n  "properties": {}\n  "required": []\n}'

    response = _save_schema(client, flow, text)

    assert response.status_code == 200
    assert "Not valid JSON: Expecting ',' delimiter at line 4, column 3." in _errors(
        response.content.decode()
    )
    assert text.replace('"', "&quot;") in response.content.decode()  # shown back as typed
    flow.refresh_from_db()
    assert flow.settings_schema == {}


def test_a_settings_schema_that_is_not_a_json_schema_names_the_place_and_its_line(
    client, flow, staff
):
    text = '{\n  "type": "object",\n  "properties": {\n    "region": {"type": "strin"}\n  }\n}'

    response = _save_schema(client, flow, text)

    errors = _errors(response.content.decode())
    assert "Not a valid JSON Schema at $.properties.region.type:" in errors
    assert "(line 4)." in errors
    flow.refresh_from_db()
    assert flow.settings_schema == {}


def test_a_valid_settings_schema_is_saved_and_shown_indented_in_the_editor(client, flow, staff):
    response = _save_schema(
        client, flow, '{"type": "object", "properties": {"region": {"type": "string"}}}'
    )

    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.settings_schema["properties"]["region"] == {"type": "string"}
    page = client.get(reverse("admin:integrations_flow_change", args=[flow.pk])).content.decode()
    assert 'class="json-editor"' in page
    assert "staff/json_editor.js" in page
    assert "\n  &quot;type&quot;: &quot;object&quot;," in page


def test_an_emptied_json_field_stores_its_default(client, flow, staff):
    Flow.objects.filter(pk=flow.pk).update(settings_schema={"type": "object"})

    response = _save_schema(client, flow, "")

    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.settings_schema == {}

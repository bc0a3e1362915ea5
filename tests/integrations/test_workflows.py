"""Workflow definitions are checked when saved: each refusal names the step and the field."""

from __future__ import annotations

import pytest

from core.errors import Invalid
from integrations.models import Workflow
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(tenant):
    crm = factories.make_api_key_app(slug="crm", api_base_url="https://crm.example.com/api")
    mail = factories.make_api_key_app(slug="mail", api_base_url="https://mail.example.com")
    return factories.make_flow(tenant=tenant, apps=[crm, mail])


def save(flow, steps, response=None, **extra):
    return factories.make_workflow(flow=flow, steps=steps, response=response, **extra)


def refusal(flow, steps, response=None, **extra) -> Invalid:
    with pytest.raises(Invalid) as caught:
        save(flow, steps, response, **extra)
    assert caught.value.code == "invalid_workflow"
    assert not Workflow.objects.filter(flow=flow).exists()
    return caught.value


def test_a_valid_definition_is_saved_with_its_own_public_id(flow):
    workflow = save(
        flow,
        [
            {"name": "find", "app": "crm", "path": "contacts", "query": {"q": "{{ input.q }}"}},
            {
                "name": "send",
                "app": "mail",
                "method": "POST",
                "path": "messages/{{ steps.find.body.0.id }}",
                "body": {"to": "{{ steps.find.body.0.email }}", "folder": "{{ settings.f }}"},
            },
        ],
        {"sent": "{{ steps.send.body.id }}"},
    )

    assert workflow.public_id
    assert Workflow.objects.get(pk=workflow.pk).steps[1]["app"] == "mail"


def test_an_app_the_flow_does_not_use_is_refused_naming_the_step(flow):
    error = refusal(flow, [{"name": "list", "app": "github", "path": "repos"}])

    assert "step “list”.app" in error.message
    assert "github" in error.message
    assert "step “list”.app" in error.fields


@pytest.mark.parametrize(
    "path",
    [
        "../admin",
        "/etc/passwd",
        "https://evil.example.com/x",
        "a/%2e%2e/b",
        "//evil.test/x",
        "a\\b",
    ],
)
def test_a_path_that_could_leave_the_base_url_is_refused(flow, path):
    error = refusal(flow, [{"name": "escape", "app": "crm", "path": path}])

    assert "step “escape”.path" in error.message


@pytest.mark.parametrize(
    "template",
    [
        "{{ input.__class__.__mro__ }}",
        "{{ __import__('os').system('id') }}",
        "{{ input.title.__globals__ }}",
        "{% import os %}",
        "{{ eval('1') }}",
        "{{ input['x'] }}",
        "{{ request.user }}",
    ],
)
def test_a_template_that_tries_code_or_attribute_access_is_refused_when_saved(flow, template):
    error = refusal(
        flow,
        [{"name": "create", "app": "crm", "method": "POST", "path": "x", "body": {"a": template}}],
    )

    assert "step “create”.body" in error.message


def test_a_hostile_template_in_the_response_is_refused(flow):
    error = refusal(
        flow, [{"name": "a", "app": "crm", "path": "x"}], {"r": "{{ steps.a.__dict__ }}"}
    )

    assert error.message.startswith("The workflow is not valid: response")


def test_a_step_may_only_read_steps_that_ran_before_it(flow):
    error = refusal(
        flow,
        [
            {"name": "first", "app": "crm", "path": "{{ steps.second.body.id }}"},
            {"name": "second", "app": "crm", "path": "x"},
        ],
    )

    assert "step “first”" in error.message
    assert "second" in error.message


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ({"name": "a", "app": "crm", "path": "x", "headers": {"Authorization": "x"}}, "headers"),
        ({"name": "a", "app": "crm", "path": "x", "headers": {"X-Portal-User": "x"}}, "headers"),
        ({"name": "a", "app": "crm", "path": "x", "method": "TRACE"}, "method"),
        ({"name": "a", "app": "crm", "path": "x", "body": {"a": 1}}, "body"),
        ({"name": "a", "app": "crm", "path": ""}, "path"),
        ({"name": "a", "app": "crm", "path": "x", "eval": "1"}, "unknown key"),
        ({"name": "1bad", "app": "crm", "path": "x"}, "name"),
    ],
)
def test_other_broken_steps_are_refused_with_the_field_named(flow, step, where):
    error = refusal(flow, [step])

    assert where in error.message


def test_two_steps_with_one_name_and_a_bad_input_schema_are_refused(flow):
    refusal(
        flow, [{"name": "a", "app": "crm", "path": "x"}, {"name": "a", "app": "crm", "path": "y"}]
    )
    error = refusal(flow, [], input_schema={"type": "not-a-type"})
    assert "input_schema" in error.fields

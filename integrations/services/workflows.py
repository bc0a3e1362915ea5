"""Workflow definitions: checked whenever they are saved, so a run never meets a broken one.

A definition is a list of steps, each an HTTP request to one of the flow's apps, and a response
mapping. Every string in a step's path, query, headers and body, and in the response, is a
template (``integrations.services.templating``). The check refuses, with a message naming the
step: an app the flow does not use, a template the language refuses (code, attribute access,
an unknown root or filter, a step not run yet), a path that could leave the app's base URL, a
header the portal sets itself, and an input schema that is not a JSON Schema.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from django.db import transaction

from core.errors import Invalid
from integrations.models import Flow, Workflow
from integrations.services.proxy import ProxyRefused, proxy_path_clean
from integrations.services.templating import (
    Template,
    TemplateSyntaxError,
    compile_structure,
    compile_template,
)

MAX_STEPS = 20
# Holes in a whole definition: with the run's render budget, what keeps a definition from
# multiplying its input into megabytes.
MAX_DEFINITION_EXPRESSIONS = 500
STEP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
STEP_KEYS = {"name", "app", "method", "path", "query", "headers", "body"}
STEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# The portal applies the account's auth and its own headers; a step may not set these.
RESERVED_HEADERS = ("authorization", "cookie", "host", "content-length", "proxy-authorization")
RESERVED_HEADER_PREFIXES = ("x-portal-", "x-forwarded-")


def _refuse(where: str, message: str) -> Invalid:
    return Invalid(
        f"The workflow is not valid: {where}: {message}",
        code="invalid_workflow",
        fields={where: message},
    )


def _check_step_references(templates: list[tuple[str, Template]], *, known: list[str], where: str):
    for place, template in templates:
        for expression in template.expressions:
            if expression.root != "steps":
                continue
            if not expression.path or expression.path[0] not in known:
                named = expression.path[0] if expression.path else ""
                earlier = ", ".join(known) or "none"
                raise _refuse(
                    f"{where}.{place}" if place else where,
                    f"{{{{ {expression.source} }}}} names step “{named}”, which has not run "
                    f"by then (earlier steps: {earlier})",
                )


def _compile(value: Any, where: str) -> list[tuple[str, Template]]:
    try:
        return compile_structure(value)
    except TemplateSyntaxError as exc:
        raise _refuse(where, str(exc)) from None


def _check_step(step: Any, *, position: int, app_slugs: set[str], earlier: list[str]) -> str:
    label = f"steps.{position}"
    if not isinstance(step, dict):
        raise _refuse(label, "a step must be an object")
    name = step.get("name")
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise _refuse(
            f"{label}.name",
            "each step needs a name: a letter, then letters, digits, '-' or '_' (up to 63)",
        )
    where = f"step “{name}”"
    if name in earlier:
        raise _refuse(where, "two steps have this name")
    unknown = set(step) - STEP_KEYS
    if unknown:
        raise _refuse(where, f"unknown key(s) {', '.join(sorted(unknown))}")
    app = step.get("app")
    if app not in app_slugs:
        raise _refuse(
            f"{where}.app",
            f"“{app}” is not an app of this flow (its apps: {', '.join(sorted(app_slugs))})",
        )
    method = str(step.get("method", "GET")).upper()
    if method not in STEP_METHODS:
        raise _refuse(f"{where}.method", f"use one of {', '.join(STEP_METHODS)}")
    path = step.get("path")
    if not isinstance(path, str) or not path:
        raise _refuse(f"{where}.path", "a path relative to the app's API base URL is required")
    try:
        path_template = compile_template(path)
    except TemplateSyntaxError as exc:
        raise _refuse(f"{where}.path", str(exc)) from None
    try:
        proxy_path_clean(path_template.with_placeholders())
    except ProxyRefused as exc:
        raise _refuse(f"{where}.path", f"{exc.message}") from None
    for key in ("query", "headers"):
        value = step.get(key, {})
        if not isinstance(value, dict):
            raise _refuse(f"{where}.{key}", "must be an object of names to values")
    for header in step.get("headers", {}):
        lowered = header.lower()
        if not HEADER_NAME.match(header):
            raise _refuse(f"{where}.headers", f"“{header[:40]}” is not a header name")
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES):
            raise _refuse(
                f"{where}.headers",
                f"“{header}” is set by the portal (the account's auth is applied for you)",
            )
    if "body" in step and method in ("GET", "DELETE"):
        raise _refuse(f"{where}.body", f"a {method} request has no body")
    templates = [("path", path_template)]
    for key in ("query", "headers", "body"):
        if key in step:
            templates += [
                (f"{key}.{place}" if place else key, template)
                for place, template in _compile(step[key], f"{where}.{key}")
            ]
    _check_step_references(templates, known=earlier, where=where)
    return name


def workflow_definition_check(*, flow: Flow, input_schema: Any, steps: Any, response: Any) -> None:
    """Raise Invalid, naming the step and the field, when the definition cannot run."""
    if not isinstance(input_schema, dict):
        raise _refuse("input_schema", "must be a JSON Schema object")
    if input_schema:
        try:
            jsonschema.Draft202012Validator.check_schema(input_schema)
        except jsonschema.SchemaError as exc:
            raise _refuse("input_schema", f"not a valid JSON Schema: {exc.message}") from None
    if not isinstance(steps, list):
        raise _refuse("steps", "must be a list of steps")
    if len(steps) > MAX_STEPS:
        raise _refuse("steps", f"at most {MAX_STEPS} steps")
    app_slugs = set(flow.apps.values_list("slug", flat=True))
    names: list[str] = []
    for position, step in enumerate(steps):
        names.append(_check_step(step, position=position, app_slugs=app_slugs, earlier=names))
    response_templates = _compile(response, "response")
    _check_step_references(response_templates, known=names, where="response")
    holes = sum(
        len(template.expressions)
        for where, value in [("steps", steps), ("response", response)]
        for _, template in _compile(value, where)
    )
    if holes > MAX_DEFINITION_EXPRESSIONS:
        raise _refuse(
            "steps",
            f"{holes} {{{{ … }}}} holes in all; a workflow may have at most "
            f"{MAX_DEFINITION_EXPRESSIONS}",
        )


def workflow_apps(workflow_definition: dict) -> list[str]:
    """The slugs of the apps a definition's steps call, in first-use order."""
    seen: list[str] = []
    for step in workflow_definition.get("steps", []):
        if step["app"] not in seen:
            seen.append(step["app"])
    return seen


@transaction.atomic
def workflow_save(*, workflow: Workflow) -> Workflow:
    """Check the definition and the model's own rules, then save."""
    workflow_definition_check(
        flow=workflow.flow,
        input_schema=workflow.input_schema,
        steps=workflow.steps,
        response=workflow.response,
    )
    workflow.full_clean()
    workflow.save()
    return workflow

"""The workflows' template language: what it reads, how it renders, and what it refuses."""

from __future__ import annotations

import pytest

from integrations.services.templating import (
    TemplateSyntaxError,
    TemplateValueMissing,
    compile_structure,
    compile_template,
    render_structure,
)

CONTEXT = {
    "input": {"title": "Buy milk", "count": "3", "tags": ["a", "b"], "nested": {"k": None}},
    "settings": {"folder": "Inbox"},
    "steps": {"list": {"status": 200, "body": [{"id": "i-1"}, {"id": "i-2"}]}},
}


def render(source: str):
    return compile_template(source).render(CONTEXT)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.title }}", "Buy milk"),
        ("Title: {{input.title}}!", "Title: Buy milk!"),
        ("{{ steps.list.body.1.id }}", "i-2"),
        ("{{ steps.list.status }}", 200),
        ("{{ input.tags }}", ["a", "b"]),
        ("tags={{ input.tags }}", 'tags=["a","b"]'),
        ("{{ steps.list.body | length }}", 2),
        ("{{ steps.list.body | first }}", {"id": "i-1"}),
        ("{{ steps.list.body | last | json }}", '{"id":"i-2"}'),
        ("{{ input.count | int }}", 3),
        ("{{ input.title | upper }}", "BUY MILK"),
        ("{{ input.title | lower | trim }}", "buy milk"),
        ('{{ input.missing | default:"none" }}', "none"),
        ('{{ input.missing | upper | default:"x|y" }}', "x|y"),
        ("{{ input.nested.k | default:7 }}", 7),
        ("{{ settings.folder }}/items", "Inbox/items"),
        ("no holes at all", "no holes at all"),
        ("{{ input.count | string }}", "3"),
    ],
)
def test_a_template_reads_dotted_paths_and_applies_filters(source, expected):
    assert render(source) == expected


def test_a_missing_value_without_default_is_an_error_naming_the_expression():
    with pytest.raises(TemplateValueMissing, match=r"input\.nope"):
        render("{{ input.nope }}")


def test_a_path_through_a_non_container_is_missing_not_an_attribute():
    # "title" is a str: ``.upper`` is not a key, so it is missing (never str.upper).
    with pytest.raises(TemplateValueMissing):
        render("{{ input.title.upper }}")
    with pytest.raises(TemplateValueMissing):
        render("{{ input.tags.count }}")


def test_a_filter_on_the_wrong_kind_of_value_is_a_clear_error():
    with pytest.raises(TemplateValueMissing, match="whole number"):
        render("{{ input.title | int }}")


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        ("{{ input.__class__ }}", "_"),
        ("{{ input.__class__.__mro__ }}", "_"),
        ("{{ input._private }}", "_"),
        ("{{ __import__('os').system('id') }}", "_"),
        ("{{ input.title.__len__() }}", "_"),
        ("{{ eval('1+1') }}", "dotted path"),
        ("{{ open('/etc/passwd') }}", "dotted path"),
        ("{{ input['title'] }}", "dotted path"),
        ("{{ input.title + 'x' }}", "dotted path"),
        ("{{ lambda: 1 }}", "dotted path"),
        ('{{ input.title | attr:"__class__" }}', "not a filter"),
        ("{{ input.title | default:__import__ }}", "argument"),
        ('{{ input.title | default:{"a": 1} }}', "plain value"),
        ("{{ request.META }}", "not a value templates can read"),
        ("{{ self }}", "not a value templates can read"),
        ("{{ config.SECRET_KEY }}", "not a value templates can read"),
        ("{% for x in input %}{% endfor %}", "not part of this language"),
        ("{# comment #}", "not part of this language"),
        ("{{ input.title ", "without its pair"),
        ("{{ }}", "empty"),
        ('{{ input.title | upper:"x" }}', "takes no argument"),
        ("{{ input.title | default }}", "needs an argument"),
        ('{{ input.title | default:"unclosed }}', "not closed"),
        ("{{ input." + ".".join(["a"] * 30) + " }}", "deeper"),
        ("x" * 5000, "longer than"),
    ],
)
def test_a_hostile_or_broken_template_is_refused_when_compiled(hostile, reason):
    with pytest.raises(TemplateSyntaxError, match=reason):
        compile_template(hostile)


def test_the_context_is_only_json_so_no_object_is_reachable():
    # Even with a Python object in the context, lookups are dict keys and list indexes only.
    class Secretive:
        secret = "s3cr3t"

    context = {"input": {"obj": Secretive()}}
    with pytest.raises(TemplateValueMissing):
        compile_template("{{ input.obj.secret }}").render(context)


def test_a_structure_is_compiled_with_the_place_of_an_error_named():
    with pytest.raises(TemplateSyntaxError, match=r"^items\.1\.name: "):
        compile_structure({"items": [{"name": "ok"}, {"name": "{{ input.__dict__ }}"}]})


def test_a_structure_renders_each_string_and_keeps_other_json_values():
    body = {"title": "{{ input.title }}", "tags": "{{ input.tags }}", "n": 1, "ok": True}

    assert render_structure(body, CONTEXT) == {
        "title": "Buy milk",
        "tags": ["a", "b"],
        "n": 1,
        "ok": True,
    }


def test_placeholders_replace_holes_to_check_the_fixed_parts():
    template = compile_template("items/{{ input.id }}/notes")

    assert template.with_placeholders() == "items/x/notes"

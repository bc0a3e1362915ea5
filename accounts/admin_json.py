"""The JSON editor staff use for JSON fields in the admin (a settings schema, a workflow's
steps, an app's verification request): the text as staff typed it, checked on the server with
an error that names the problem and its line, and a client-side hint (static/staff/).

``TenantScopedAdmin`` gives every JSON model field this editor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput


class JsonEditorWidget(forms.Textarea):
    """A monospace textarea for JSON; static/staff/json_editor.js checks it as staff type (a
    hint: the server's check is the one that counts) and offers "Format"."""

    class Media:
        css = {"all": ["staff/json_editor.css"]}
        js = ["staff/json_editor.js"]

    def __init__(self, attrs=None):
        super().__init__(
            {"class": "json-editor", "rows": 10, "cols": 80, "spellcheck": "false", **(attrs or {})}
        )


class JsonEditorField(forms.JSONField):
    """A JSON form field whose error says what is wrong and on which line and column.

    ``check`` (optional) validates the parsed value further and raises ``JsonProblem`` with the
    path of the offending part, which is turned into a line of the text staff wrote.
    """

    widget = JsonEditorWidget

    def __init__(
        self, *args, check: Callable[[Any], None] | None = None, empty_value=None, **kwargs
    ):
        kwargs.setdefault("widget", JsonEditorWidget)
        super().__init__(*args, **kwargs)
        self.check = check
        # What an emptied field means: the model field's default ({} or []) when it is not
        # nullable, so that clearing the text does not try to store NULL.
        self.empty_value = empty_value

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

    def bound_data(self, data, initial):
        # Show back what staff typed, as typed, so the line an error names is the line they see.
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        return InvalidJSONInput(data)

    def to_python(self, value):
        if self.disabled:
            return super().to_python(value)
        if value in self.empty_values:
            return self.empty_value
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value, cls=self.decoder)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                code="invalid",
            ) from None
        if self.check is not None:
            try:
                self.check(parsed)
            except JsonProblem as problem:
                line = json_line_of(value, problem.path)
                where = f" (line {line})" if line else ""
                raise ValidationError(f"{problem.message}{where}.", code="invalid") from None
        return parsed


class JsonProblem(Exception):
    """What is wrong with a parsed JSON value, and the path of keys and indexes to it."""

    def __init__(self, message: str, path: Sequence[str | int] = ()):
        super().__init__(message)
        self.message = message
        self.path = list(path)


def json_line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The line of ``text`` where the member at ``path`` is written (its last key found in
    order), or None at the top level. An estimate good enough to point staff at it."""
    position, found = 0, False
    for part in path:
        if isinstance(part, int):
            continue
        at = text.find(json.dumps(part), position)
        if at < 0:
            break
        position, found = at, True
    return text.count("\n", 0, position) + 1 if found else None

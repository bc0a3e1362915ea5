"""The workflows' template language: values from the trigger input, the installation's settings
and earlier steps' results, placed into a step's request or the final response.

A template is text with ``{{ expression }}`` holes. An expression is a dotted path from one of
the roots (``input``, ``settings``, ``steps``) followed by filters:

    {{ input.title }}                      {{ steps.list.body.0.id }}
    {{ settings.folder | default:"Inbox" }} {{ steps.list.body | length }}

A path step is a dict key or a list index, nothing else: there is no attribute access, no call,
no arithmetic and no ``eval``, so a template can read the JSON it is given and can do nothing
more. Names starting with ``_`` are refused outright. A template is compiled (and refused with a
message saying why) when a workflow is saved; rendering never meets a syntax error.

A string that is exactly one hole keeps the value's JSON type (a list stays a list in a JSON
body); text around a hole makes the result text (objects and lists as JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ROOTS = ("input", "settings", "steps")
MAX_TEMPLATE_LENGTH = 4000
MAX_EXPRESSIONS = 50
MAX_PATH_DEPTH = 20
MAX_FILTERS = 5

HOLE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
INDEX = re.compile(r"^(0|[1-9][0-9]{0,5})$")
FILTER = re.compile(r"^([a-z_]+)(?:\s*:\s*(.+))?$", re.DOTALL)


class TemplateSyntaxError(ValueError):
    """The template is not one this language accepts; the message says what to change."""


class TemplateValueRefused(ValueError):
    """A value that renders but cannot be used where it goes (a path segment with a '/')."""


class TemplateTooLarge(ValueError):
    """What a structure renders to is over its budget (see ``RenderBudget``)."""


class RenderBudget:
    """How many characters one rendering may produce in all: a definition cannot turn a small
    input (or one step's body, repeated) into megabytes on the workers."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def spend(self, value: Any) -> None:
        if isinstance(value, str):
            self.used += len(value)
        elif isinstance(value, (dict, list)):
            self.used += len(json.dumps(value, separators=(",", ":"), default=str))
        else:
            self.used += 8
        if self.used > self.limit:
            raise TemplateTooLarge(f"it renders to more than {self.limit:,} characters")


class TemplateValueMissing(LookupError):
    """A path named a value the data does not have (and no ``default`` filter caught it)."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise TemplateValueMissing("length needs a text, a list or an object")


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else MISSING
    raise TemplateValueMissing("first needs a list")


def _last(value: Any) -> Any:
    if isinstance(value, list):
        return value[-1] if value else MISSING
    raise TemplateValueMissing("last needs a list")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise TemplateValueMissing(f"{_text(value)[:40]!r} is not a whole number") from None


# name -> (takes an argument, function(value, argument)). ``default`` is handled apart: it is
# the one filter that sees a missing value.
FILTERS: dict[str, tuple[bool, Callable[[Any, Any], Any]]] = {
    "default": (True, lambda value, arg: arg if value is MISSING or value is None else value),
    "json": (False, lambda value, _: json.dumps(value, separators=(",", ":"))),
    "string": (False, lambda value, _: _text(value)),
    "int": (False, lambda value, _: _int(value)),
    "length": (False, lambda value, _: _length(value)),
    "first": (False, lambda value, _: _first(value)),
    "last": (False, lambda value, _: _last(value)),
    "upper": (False, lambda value, _: _text(value).upper()),
    "lower": (False, lambda value, _: _text(value).lower()),
    "trim": (False, lambda value, _: _text(value).strip()),
}


@dataclass(frozen=True)
class Expression:
    source: str
    root: str
    path: tuple[str | int, ...]
    filters: tuple[tuple[str, Any], ...]

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        value: Any = context.get(self.root, MISSING)
        for step in self.path:
            value = _lookup(value, step)
        for name, argument in self.filters:
            if value is MISSING and name != "default":
                continue
            value = FILTERS[name][1](value, argument)
        if value is MISSING:
            raise TemplateValueMissing(f"{{{{ {self.source} }}}} has no value")
        return value


def _lookup(value: Any, step: str | int) -> Any:
    """One path step: a key of a dict or an index of a list; anything else is missing."""
    if value is MISSING:
        return MISSING
    if isinstance(value, dict):
        return value.get(str(step), MISSING)
    if isinstance(value, list) and isinstance(step, int):
        return value[step] if step < len(value) else MISSING
    return MISSING


def _split_filters(text: str) -> list[str]:
    """Split on ``|`` outside double-quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise TemplateSyntaxError("a quoted argument is not closed")
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _literal(text: str, *, filter_name: str) -> Any:
    """A filter argument: a JSON string, number, true, false or null, and nothing else."""
    try:
        value = json.loads(text)
    except ValueError:
        raise TemplateSyntaxError(
            f"the argument of {filter_name} must be a quoted text, a number, true, false or "
            f'null (e.g. {filter_name}:"none"), not {text[:40]!r}'
        ) from None
    if isinstance(value, (dict, list)):
        raise TemplateSyntaxError(f"the argument of {filter_name} must be a plain value")
    return value


def compile_expression(source: str) -> Expression:
    source = source.strip()
    if not source:
        raise TemplateSyntaxError("an empty {{ }}")
    path_text, *filter_texts = _split_filters(source)
    if len(filter_texts) > MAX_FILTERS:
        raise TemplateSyntaxError(f"more than {MAX_FILTERS} filters in one expression")
    segments = path_text.split(".")
    if len(segments) > MAX_PATH_DEPTH + 1:
        raise TemplateSyntaxError(f"a path deeper than {MAX_PATH_DEPTH}")
    for segment in segments:
        if segment.startswith("_") or "__" in segment:
            raise TemplateSyntaxError(
                f"“{segment[:40]}”: names starting with '_' are not allowed (no attribute access)"
            )
        if not (NAME.match(segment) or INDEX.match(segment)):
            raise TemplateSyntaxError(
                f"“{path_text[:60]}” is not a dotted path: use names and list indexes separated "
                "by dots, such as input.title or steps.list.body.0.id (no calls, brackets, "
                "operators or code)"
            )
    root, *rest = segments
    if root not in ROOTS:
        raise TemplateSyntaxError(
            f"“{root[:40]}” is not a value templates can read; start with one of: "
            f"{', '.join(ROOTS)}"
        )
    path = tuple(int(s) if INDEX.match(s) else s for s in rest)
    filters = []
    for text in filter_texts:
        match = FILTER.match(text)
        if not match or match.group(1) not in FILTERS:
            raise TemplateSyntaxError(
                f"“{text[:40]}” is not a filter; available: {', '.join(sorted(FILTERS))}"
            )
        name, argument_text = match.group(1), match.group(2)
        takes_argument = FILTERS[name][0]
        if takes_argument and argument_text is None:
            raise TemplateSyntaxError(f'{name} needs an argument, e.g. {name}:""')
        if not takes_argument and argument_text is not None:
            raise TemplateSyntaxError(f"{name} takes no argument")
        argument = _literal(argument_text, filter_name=name) if takes_argument else None
        filters.append((name, argument))
    return Expression(source=source, root=root, path=path, filters=tuple(filters))


@dataclass(frozen=True)
class Template:
    """A compiled template: literal text and expressions, in order."""

    source: str
    parts: tuple[str | Expression, ...]

    @property
    def expressions(self) -> list[Expression]:
        return [part for part in self.parts if isinstance(part, Expression)]

    def render(self, context: Mapping[str, Any]) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0].evaluate(context)
        return "".join(
            part if isinstance(part, str) else _text(part.evaluate(context)) for part in self.parts
        )

    def render_path(self, context: Mapping[str, Any]) -> str:
        """Render a URL path: each hole's value must be one path segment, so an input can name a
        resource but never add segments (``123/attachments/9``) or climb out (``..``)."""
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            text = _text(part.evaluate(context))
            if text in ("", ".", "..") or "/" in text or "\\" in text:
                raise TemplateValueRefused(
                    f"{{{{ {part.source} }}}} gave {text[:40]!r}, which is not one path segment "
                    "(it is empty, '.' or '..', or holds a '/' or '\\')"
                )
            pieces.append(text)
        return "".join(pieces)

    def render_text(self, context: Mapping[str, Any]) -> str:
        return _text(self.render(context))

    def with_placeholders(self, placeholder: str = "x") -> str:
        """The template with every hole replaced by ``placeholder`` (to check its fixed parts)."""
        return "".join(part if isinstance(part, str) else placeholder for part in self.parts)


def compile_template(source: str) -> Template:
    """Compile ``source`` or raise TemplateSyntaxError saying what is wrong."""
    if not isinstance(source, str):
        raise TemplateSyntaxError("a template must be text")
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateSyntaxError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    for marker in ("{%", "%}", "{#", "#}"):
        if marker in source:
            raise TemplateSyntaxError(
                f"“{marker}” is not part of this language: only {{{{ path | filter }}}} holes"
            )
    parts: list[str | Expression] = []
    position = 0
    for match in HOLE.finditer(source):
        if match.start() > position:
            parts.append(source[position : match.start()])
        parts.append(compile_expression(match.group(1)))
        position = match.end()
    if position < len(source):
        parts.append(source[position:])
    literal_text = "".join(part for part in parts if isinstance(part, str))
    if "{{" in literal_text or "}}" in literal_text:
        raise TemplateSyntaxError("a '{{' or '}}' without its pair")
    if sum(isinstance(part, Expression) for part in parts) > MAX_EXPRESSIONS:
        raise TemplateSyntaxError(f"more than {MAX_EXPRESSIONS} expressions")
    return Template(source=source, parts=tuple(parts))


def compile_structure(value: Any, *, where: str = "") -> list[tuple[str, Template]]:
    """Compile every string inside a JSON value (object keys are never templates).

    Returns ``(where, template)`` pairs; a syntax error names where it is, such as
    ``body.items.0``.
    """
    found: list[tuple[str, Template]] = []
    if isinstance(value, str):
        try:
            found.append((where, compile_template(value)))
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"{where or 'value'}: {exc}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(compile_structure(item, where=f"{where}.{key}" if where else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(compile_structure(item, where=f"{where}.{index}" if where else str(index)))
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise TemplateSyntaxError(f"{where or 'value'}: not a JSON value")
    return found


def render_structure(
    value: Any, context: Mapping[str, Any], *, budget: RenderBudget | None = None
) -> Any:
    """Render every string inside a JSON value; other values are kept as they are. With a
    ``budget``, TemplateTooLarge once the rendered values add up to more than it allows."""
    if isinstance(value, str):
        rendered = compile_template(value).render(context)
        if budget is not None:
            budget.spend(rendered)
        return rendered
    if isinstance(value, dict):
        return {key: render_structure(item, context, budget=budget) for key, item in value.items()}
    if isinstance(value, list):
        return [render_structure(item, context, budget=budget) for item in value]
    return value

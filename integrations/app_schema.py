"""JSON Schemas for the structured parts of an App: its form fields, auth scheme and verification.

They are checked by ``App.clean()`` (the admin and the catalog loader both call it), so a catalog
entry that would break the modal or the verification job is refused when it is saved.
"""

from typing import Any

import jsonschema
from django.core.exceptions import ValidationError

FIELDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "label"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "label": {"type": "string", "minLength": 1},
            "help": {"type": "string"},
            "placeholder": {"type": "string"},
            "pattern": {"type": "string"},
            "secret": {"type": "boolean"},
            "required": {"type": "boolean"},
        },
    },
}

AUTH_SCHEME_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["in", "name", "template"],
            "additionalProperties": False,
            "properties": {
                "in": {"enum": ["header", "query"]},
                "name": {"type": "string", "minLength": 1},
                "template": {"type": "string", "minLength": 1},
            },
        },
        {
            "type": "object",
            "required": ["in", "username", "password"],
            "additionalProperties": False,
            "properties": {
                "in": {"const": "basic"},
                "username": {"type": "string"},
                "password": {"type": "string"},
            },
        },
    ]
}

VERIFICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["path", "identity"],
    "additionalProperties": False,
    "properties": {
        "method": {"enum": ["GET", "POST"]},
        "path": {"type": "string", "minLength": 1},
        "identity": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "description": "Dotted paths into the JSON response, tried in order.",
        },
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "object"},
        "success": {
            "type": "object",
            "required": ["path", "equals"],
            "additionalProperties": False,
            "description": "For APIs that answer 200 to a refused credential (Slack's ok=false).",
            "properties": {"path": {"type": "string", "minLength": 1}, "equals": {}},
        },
    },
}

TOKEN_RESPONSE_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "pattern"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "pattern": {
                "type": "string",
                "minLength": 2,
                "description": "A value that does not match is dropped, so a provider's answer "
                "can never point the API base URL at a host the app does not name.",
            },
        },
    },
}

REQUEST_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "string"},
}


def check_json(value: Any, schema: dict[str, Any], *, field: str) -> None:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise ValidationError({field: f"{where + ': ' if where else ''}{exc.message}"}) from exc

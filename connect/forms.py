"""The modal's forms: an app's API-key or basic form built from its fields, renaming an account,
and an installation's settings built from its flow's JSON Schema, and its workflows.

Each form validates its input and hands it to a service in ``save()``; a problem the service
finds is put back on the field it concerns, so the person sees it next to the input.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from connect.flows.account import credential_rename
from connect.flows.api_key import api_key_connect, api_key_reconnect
from connect.flows.installation import installation_settings_save, installation_workflows_save
from connect.messages import connection_sentence
from core.errors import DomainError
from core.validators import validate_no_control_characters
from integrations.models import App, ConnectSession, Credential, Installation, Workflow
from integrations.services.credentials import (
    MAX_LABEL_LENGTH,
    credential_fields_clean,
)
from integrations.services.verification import Connection, ConnectKind

LABEL_FIELD = "portal_label"


def _put_errors(form: forms.Form, exc: ValidationError | DomainError) -> None:
    """Attach a service's errors to the fields they name, the rest to the form."""
    if isinstance(exc, DomainError):
        fields = {name: message for name, message in exc.fields.items() if name in form.fields}
        for name, message in fields.items():
            form.add_error(name, message)
        if not fields:
            form.add_error(None, exc.message)
        return
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class CredentialFieldsForm(forms.Form):
    """The app's own form: one input per field of ``app.fields``, secrets masked.

    Patterns and requiredness are checked on the server by ``credential_fields_clean``, the
    same rule the API applies, so the form says exactly what the API would.
    """

    def __init__(self, *args: Any, app: App, with_label: bool = True, prefix_id: str, **kwargs):
        kwargs.setdefault("auto_id", f"{prefix_id}-%s")
        super().__init__(*args, **kwargs)
        self.app = app
        for spec in app.fields:
            attrs = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
            if spec.get("placeholder"):
                attrs["placeholder"] = spec["placeholder"]
            widget = (
                forms.PasswordInput(attrs=attrs, render_value=False)
                if spec.get("secret")
                else forms.TextInput(attrs=attrs)
            )
            required = spec.get("required", True)
            if required:
                attrs["aria-required"] = "true"
            # Required-ness and patterns are judged by the service, in the API's own words.
            field = forms.CharField(
                label=spec["label"],
                help_text=spec.get("help", ""),
                required=False,
                strip=True,
                widget=widget,
            )
            field.show_required = required
            self.fields[spec["name"]] = field
        if with_label:
            self.fields[LABEL_FIELD] = forms.CharField(
                label=_("Name this account (optional)"),
                help_text=_("Shown in your list of accounts, e.g. “Work” or “Client A”."),
                required=False,
                max_length=MAX_LABEL_LENGTH,
                widget=forms.TextInput(attrs={"autocomplete": "off"}),
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            credential_fields_clean(app=self.app, fields=self.secret_fields())
        except ValidationError as exc:
            _put_errors(self, exc)
        return cleaned

    def secret_fields(self) -> dict[str, str]:
        return {
            spec["name"]: self.cleaned_data.get(spec["name"], "") or "" for spec in self.app.fields
        }

    def save(self, *, session: ConnectSession) -> Connection | None:
        """Connect the account; None when the input is not valid (errors on the fields).

        A connection the provider refused is returned too, with its reason put on the form
        (next to the secret field when the provider refused the secret), so the person stays
        in the form with what they typed, secrets aside.
        """
        try:
            connection = api_key_connect(
                session=session,
                app=self.app,
                fields=self.secret_fields(),
                label=self.cleaned_data.get(LABEL_FIELD, ""),
            )
        except (ValidationError, DomainError) as exc:
            _put_errors(self, exc)
            return None
        self._put_refusal(connection, reconnecting=False)
        return connection

    def reconnect(self, *, session: ConnectSession, credential: Credential) -> Connection | None:
        try:
            connection = api_key_reconnect(
                session=session, credential=credential, fields=self.secret_fields()
            )
        except (ValidationError, DomainError) as exc:
            _put_errors(self, exc)
            return None
        self._put_refusal(connection, reconnecting=True)
        return connection

    def _put_refusal(self, connection: Connection, *, reconnecting: bool) -> None:
        if connection.ok:
            return
        message = connection_sentence(connection, app=self.app.name, reconnecting=reconnecting)
        secret_fields = [name for name in self.app.secret_field_names if name in self.fields]
        if connection.kind == ConnectKind.REJECTED and secret_fields:
            self.add_error(secret_fields[0], message)
        else:
            self.add_error(None, message)


class RenameForm(forms.Form):
    label = forms.CharField(
        label=_("Account name"),
        help_text=_("Leave empty to show the account's identity instead."),
        required=False,
        max_length=MAX_LABEL_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, prefix_id: str, **kwargs: Any):
        kwargs.setdefault("auto_id", f"{prefix_id}-%s")
        super().__init__(*args, **kwargs)

    def save(self, *, session: ConnectSession, credential: Credential) -> Credential | None:
        try:
            return credential_rename(
                session=session, credential=credential, label=self.cleaned_data["label"]
            )
        except ValidationError as exc:
            _put_errors(self, exc)
            return None


class _JsonSchemaField:
    """How one property of a flow's settings schema becomes a form field (flat schemas)."""

    @staticmethod
    def build(spec: dict[str, Any], *, required: bool) -> forms.Field | None:
        label = spec.get("title") or ""
        help_text = spec.get("description", "")
        kind = spec.get("type")
        common = {"label": label, "help_text": help_text, "required": required}
        if "enum" in spec and kind in ("string", "integer", "number", None):
            choices = [(str(value), str(value)) for value in spec["enum"]]
            if not required:
                choices = [("", "—"), *choices]
            return forms.TypedChoiceField(
                choices=choices, coerce=_coercer(kind), empty_value=None, **common
            )
        if kind == "boolean":
            return forms.BooleanField(**{**common, "required": False})
        if kind == "integer":
            return forms.IntegerField(
                min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
            )
        if kind == "number":
            return forms.FloatField(
                min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
            )
        if kind == "array" and isinstance(spec.get("items"), dict) and "enum" in spec["items"]:
            return forms.MultipleChoiceField(
                choices=[(str(v), str(v)) for v in spec["items"]["enum"]],
                widget=forms.CheckboxSelectMultiple,
                **{**common, "required": False},
            )
        if kind == "string":
            widget = forms.TextInput(attrs={"autocomplete": "off"})
            if spec.get("format") == "email":
                return forms.EmailField(widget=widget, **common)
            return forms.CharField(
                max_length=spec.get("maxLength"),
                min_length=spec.get("minLength"),
                widget=widget,
                validators=[_free_text],
                **common,
            )
        return None


def _free_text(value: str) -> None:
    validate_no_control_characters(value, text=True)


def _coercer(kind: str | None):
    if kind == "integer":
        return int
    if kind == "number":
        return float
    return str


class InstallationSettingsForm(forms.Form):
    """The settings form of an installation, generated from its flow's JSON Schema.

    Properties the form cannot show (nested objects, free arrays) keep their current values;
    the service validates the whole result against the schema.
    """

    def __init__(self, *args: Any, installation: Installation, prefix_id: str, **kwargs: Any):
        kwargs.setdefault("auto_id", f"{prefix_id}-%s")
        schema = installation.flow.settings_schema or {}
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        initial = {}
        for name, spec in properties.items():
            if not isinstance(spec, dict):
                continue
            value = installation.settings.get(name, spec.get("default"))
            initial[name] = str(value) if "enum" in spec and value is not None else value
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.installation = installation
        for name, spec in properties.items():
            if not isinstance(spec, dict):
                continue
            field = _JsonSchemaField.build(spec, required=name in required)
            if field is not None:
                field.label = field.label or name.replace("_", " ").capitalize()
                self.fields[name] = field

    @property
    def has_fields(self) -> bool:
        return bool(self.fields)

    def save(self, *, session: ConnectSession) -> Installation | None:
        values = {
            name: value
            for name, value in self.cleaned_data.items()
            if value is not None and value != ""
        }
        try:
            return installation_settings_save(
                session=session, installation=self.installation, settings=values
            )
        except DomainError as exc:
            _put_errors(self, exc)
            return None


class WorkflowsForm(forms.Form):
    workflows = forms.MultipleChoiceField(
        label=_("Run these workflows"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(
        self,
        *args: Any,
        installation: Installation,
        workflows: list[Workflow],
        prefix_id: str,
        **kwargs: Any,
    ):
        kwargs.setdefault("auto_id", f"{prefix_id}-%s")
        super().__init__(*args, **kwargs)
        self.installation = installation
        self.fields["workflows"].choices = [(wf.key, wf.name) for wf in workflows]
        self.descriptions = {wf.key: wf.description for wf in workflows}

    def save(self, *, session: ConnectSession) -> Installation | None:
        try:
            return installation_workflows_save(
                session=session,
                installation=self.installation,
                keys=list(self.cleaned_data["workflows"]),
            )
        except DomainError as exc:
            _put_errors(self, exc)
            return None

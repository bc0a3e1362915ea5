"""Forms of the sandbox's pages: its sign-in and its API-key issuing."""

from __future__ import annotations

from django import forms

from sandbox.models import SandboxAccount, SandboxApiKey
from sandbox.services import sandbox_account_authenticate, sandbox_api_key_create


class SandboxLoginForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    account: SandboxAccount | None = None

    def clean(self) -> dict:
        cleaned = super().clean()
        email, password = cleaned.get("email"), cleaned.get("password")
        if email and password:
            self.account = sandbox_account_authenticate(email=email, password=password)
            if self.account is None:
                raise forms.ValidationError(
                    "That email and password do not match a sandbox account.", code="invalid_login"
                )
        return cleaned


class SandboxApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=100,
        help_text="Where you will use it, e.g. “Connect portal”.",
    )

    def save(self, *, account: SandboxAccount) -> tuple[SandboxApiKey, str]:
        return sandbox_api_key_create(account=account, name=self.cleaned_data["name"])

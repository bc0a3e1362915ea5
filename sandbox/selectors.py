"""Reads for the sandbox provider's pages and API."""

from __future__ import annotations

from django.db.models import QuerySet

from sandbox.models import SandboxAccount, SandboxApiKey, SandboxItem


def sandbox_account_list() -> QuerySet[SandboxAccount]:
    return SandboxAccount.objects.order_by("email")


def sandbox_api_key_list_for_account(*, account: SandboxAccount) -> QuerySet[SandboxApiKey]:
    return SandboxApiKey.objects.filter(account=account).order_by("-created_at", "-id")


def sandbox_item_list_for_account(*, account: SandboxAccount) -> QuerySet[SandboxItem]:
    return SandboxItem.objects.filter(account=account).order_by("created_at", "id")

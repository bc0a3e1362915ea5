"""Connect sessions: short-lived tickets that open the modal for one end user."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import ConnectSession, EndUser, Tenant
from accounts.tokens import hash_token, new_token
from accounts.validators import origin_of, validate_theme

MAX_SESSION_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class IssuedSession:
    session: ConnectSession
    token: str
    url: str


def connect_session_url(*, token: str) -> str:
    return settings.PORTAL_BASE_URL + reverse("connect:modal", kwargs={"token": token})


@transaction.atomic
def connect_session_create(
    *,
    tenant: Tenant,
    end_user: EndUser,
    deployment: Any = None,
    apps: Iterable[Any] = (),
    allow_multiple: bool = True,
    redirect_uri: str = "",
    lifetime: timedelta = MAX_SESSION_LIFETIME,
    theme: dict[str, Any] | None = None,
    consumer_metadata: dict[str, Any] | None = None,
    custom_settings: dict[str, Any] | None = None,
    source: str = ConnectSession.Source.API,
) -> IssuedSession:
    """Issue a session. The token is 256 random bits, returned once and stored as a hash."""
    if end_user.tenant_id != tenant.pk:
        raise ValueError("The end user belongs to another tenant.")
    if deployment is not None and deployment.tenant_id != tenant.pk:
        raise ValueError("The deployment belongs to another tenant.")
    if lifetime <= timedelta(0) or lifetime > MAX_SESSION_LIFETIME:
        raise ValidationError(
            {"session_length": "A session lasts more than 0 seconds and at most one hour."},
            code="session_too_long",
        )
    if redirect_uri and origin_of(redirect_uri) not in tenant.allowed_origins:
        raise ValidationError(
            {"redirect_uri": "The redirect URI must be on one of the tenant's allowed origins."},
            code="redirect_uri_not_allowed",
        )
    token = new_token()
    session = ConnectSession.objects.create(
        tenant=tenant,
        end_user=end_user,
        token_hash=hash_token(token),
        expires_at=timezone.now() + lifetime,
        deployment=deployment,
        allow_multiple=allow_multiple,
        redirect_uri=redirect_uri,
        theme=validate_theme(theme or {}),
        consumer_metadata=consumer_metadata or {},
        custom_settings=custom_settings or {},
        source=source,
    )
    apps = list(apps)
    if apps:
        if any(app.tenant_id not in (None, tenant.pk) for app in apps):
            raise ValueError("An app in the allowlist belongs to another tenant.")
        session.apps.set(apps)
    return IssuedSession(session=session, token=token, url=connect_session_url(token=token))


def connect_session_revoke(*, session: ConnectSession) -> ConnectSession:
    if session.revoked_at is None:
        session.revoked_at = timezone.now()
        session.save(update_fields=["revoked_at"])
    return session


def connect_session_touch(*, session: ConnectSession, origin: str = "") -> None:
    """Note when (and, once known, from which embedding origin) the session was used."""
    now = timezone.now()
    updates: dict[str, Any] = {}
    if session.last_used_at is None or (now - session.last_used_at).total_seconds() > 60:
        updates["last_used_at"] = now
    if origin and not session.used_from_origin:
        updates["used_from_origin"] = origin[:255]
    if updates:
        ConnectSession.objects.filter(pk=session.pk).update(**updates)
        for key, value in updates.items():
            setattr(session, key, value)

"""Reads for tenants, end users, connect sessions and credentials. Every read is tenant-scoped."""

from __future__ import annotations

from enum import Enum

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ConnectSession, Credential, EndUser, Tenant
from accounts.tokens import hash_token


class SessionProblem(Enum):
    """Why a session cannot open the modal; each has a message for the end user."""

    MISSING = "This page needs a connect session, and none was given."
    UNKNOWN = "This link is not a valid connect session. It may have been altered."
    EXPIRED = "This connect session has expired."
    REVOKED = "This connect session has been closed."


class SessionUnusable(Exception):
    def __init__(self, problem: SessionProblem):
        super().__init__(problem.value)
        self.problem = problem


def connect_session_for_token(*, token: str | None) -> ConnectSession:
    """The usable session for ``token``, or SessionUnusable saying why not."""
    if not token:
        raise SessionUnusable(SessionProblem.MISSING)
    if len(token) > 100:
        raise SessionUnusable(SessionProblem.UNKNOWN)
    session = (
        ConnectSession.objects.select_related("tenant", "end_user", "deployment")
        .filter(token_hash=hash_token(token))
        .first()
    )
    if session is None:
        raise SessionUnusable(SessionProblem.UNKNOWN)
    if session.revoked_at is not None:
        raise SessionUnusable(SessionProblem.REVOKED)
    if session.expires_at <= timezone.now():
        raise SessionUnusable(SessionProblem.EXPIRED)
    return session


def end_user_get(*, tenant: Tenant, external_id: str) -> EndUser | None:
    return EndUser.objects.filter(tenant=tenant, external_id=external_id).first()


def credential_list_for_end_user(
    *, end_user: EndUser, app_ids: list[int] | None = None
) -> QuerySet[Credential]:
    credentials = Credential.objects.filter(tenant_id=end_user.tenant_id, end_user=end_user)
    if app_ids is not None:
        credentials = credentials.filter(app_id__in=app_ids)
    return credentials.order_by("app_id", "created_at")


def end_user_list(*, tenant: Tenant) -> QuerySet[EndUser]:
    """The tenant's end users, oldest first (the API pages through them by creation)."""
    return EndUser.objects.filter(tenant=tenant).order_by("created_at", "pk")


def credential_get(*, tenant: Tenant, credential_id) -> Credential | None:
    """One of the tenant's credentials, or None (another tenant's is None too)."""
    return (
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(tenant=tenant, pk=credential_id)
        .first()
    )


def credential_list(
    *,
    tenant: Tenant,
    end_user: EndUser | None = None,
    app_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Credential]:
    """The tenant's credentials, filtered, oldest first (a stable order for cursor pages)."""
    credentials = Credential.objects.select_related("app", "end_user").filter(tenant=tenant)
    if end_user is not None:
        credentials = credentials.filter(end_user=end_user)
    if app_id is not None:
        credentials = credentials.filter(app_id=app_id)
    if status is not None:
        credentials = credentials.filter(status=status)
    return credentials.order_by("created_at", "pk")

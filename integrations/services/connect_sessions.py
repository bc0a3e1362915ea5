"""Connect sessions: short-lived tickets that open the modal for one end user.

A hand-off link is a connect session made for another person (e.g. the customer's admin who
holds the credentials): it lives up to the tenant's maximum (at most 7 days) instead of an
hour, may be single use (spent once an account is connected through it), names its recipient,
and records each time it is opened.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import HANDOFF_MAX_HOURS, EndUser, Tenant
from accounts.services.end_users import end_user_upsert, end_user_upsert_checked
from accounts.services.tenants import tenant_user_hash
from core.conf import conf
from core.errors import Invalid, NotFound
from core.tokens import hash_token, new_token
from core.validators import CONTROL_CHARACTERS, validate_redirect_uri, validate_theme
from integrations.models import App, ConnectSession, ConnectSessionOpen, Deployment
from integrations.selectors import app_connectability, app_list_offered

MAX_SESSION_LIFETIME = timedelta(hours=1)
HANDOFF_MAX_LIFETIME = timedelta(hours=HANDOFF_MAX_HOURS)
# Opens recorded per hand-off link, at most (a link opened more often keeps its first ones).
HANDOFF_OPENS_KEPT = 200


@dataclass(frozen=True)
class Handoff:
    """What makes a session a hand-off link."""

    recipient_name: str = ""
    recipient_email: str = ""
    single_use: bool = False


def handoff_max_lifetime(*, tenant: Tenant) -> timedelta:
    """The tenant's longest hand-off link, never above 7 days."""
    hours = min(tenant.handoff_max_hours or HANDOFF_MAX_HOURS, HANDOFF_MAX_HOURS)
    return timedelta(hours=hours)


def _too_long(maximum: timedelta, *, handoff: bool) -> Invalid:
    hours = int(maximum.total_seconds() // 3600)
    if not handoff:
        return Invalid(
            'session_length must be more than 0 seconds and at most one hour ("1h").',
            code="session_too_long",
            fields={"session_length": "At most 1h."},
        )
    return Invalid(
        f"session_length must be more than 0 seconds and at most {hours} hours "
        f'("{hours}h") for a hand-off link: the longest your tenant allows.',
        code="session_too_long",
        fields={"session_length": f"At most {hours}h for a hand-off link."},
    )


def _not_connectable_reasons(*, tenant: Tenant, slugs: list[str]) -> dict[str, str]:
    """For slugs the modal would not offer: why, when the reason is the app's connectability."""
    if not slugs:
        return {}
    apps = list(
        App.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant), slug__in=slugs)
        .filter(flows__tenant=tenant)
        .distinct()
    )
    found = app_connectability(tenant=tenant, apps=apps)
    return {app.slug: found[app.pk].reason for app in apps if not found[app.pk].connectable}


@dataclass(frozen=True)
class IssuedSession:
    session: ConnectSession
    token: str
    url: str


def connect_session_url(*, token: str) -> str:
    return conf.BASE_URL + reverse("connect:modal", kwargs={"token": token})


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
    locale: str = "",
    handoff: Handoff | None = None,
) -> IssuedSession:
    """Issue a session. The token is 256 random bits, returned once and stored as a hash.

    With ``handoff``, a hand-off link: ``lifetime`` may reach the tenant's hand-off maximum.
    """
    if end_user.tenant_id != tenant.pk:
        raise ValueError("The end user belongs to another tenant.")
    if deployment is not None and deployment.tenant_id != tenant.pk:
        raise ValueError("The deployment belongs to another tenant.")
    maximum = handoff_max_lifetime(tenant=tenant) if handoff else MAX_SESSION_LIFETIME
    if lifetime <= timedelta(0) or lifetime > maximum:
        raise _too_long(maximum, handoff=handoff is not None)
    if redirect_uri:
        try:
            validate_redirect_uri(redirect_uri, allowed_origins=tenant.allowed_origins)
        except ValidationError as exc:
            raise Invalid(
                exc.messages[0],
                code=exc.code,
                fields={
                    "redirect_uri": "Not on an allowed origin."
                    if exc.code == "redirect_uri_not_allowed"
                    else "Not a clean absolute http(s) URL."
                },
            ) from exc
    languages = [code for code, _ in settings.LANGUAGES]
    if locale and locale not in languages:
        raise Invalid(
            f"locale must be one of {', '.join(languages)}.",
            code="invalid_locale",
            fields={"locale": f"One of {', '.join(languages)}."},
        )
    try:
        theme = validate_theme(theme or {})
    except ValidationError as exc:
        fields = {key: " ".join(messages) for key, messages in exc.message_dict.items()}
        raise Invalid(
            "The theme is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
            code="invalid_theme",
            fields=fields,
        ) from exc
    token = new_token()
    session = ConnectSession.objects.create(
        tenant=tenant,
        end_user=end_user,
        token_hash=hash_token(token),
        expires_at=timezone.now() + lifetime,
        deployment=deployment,
        allow_multiple=allow_multiple,
        redirect_uri=redirect_uri,
        theme=theme,
        consumer_metadata=consumer_metadata or {},
        custom_settings=custom_settings or {},
        source=ConnectSession.Source.HANDOFF if handoff else source,
        locale=locale,
        recipient_name=handoff.recipient_name if handoff else "",
        recipient_email=handoff.recipient_email if handoff else "",
        single_use=handoff.single_use if handoff else False,
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


def connect_session_spend(*, session: ConnectSession) -> bool:
    """A single-use link is spent by the first account connected through it (True when this
    call spent it). Other sessions are never spent."""
    if not session.single_use or session.spent_at is not None:
        return False
    now = timezone.now()
    spent = ConnectSession.objects.filter(pk=session.pk, spent_at__isnull=True).update(spent_at=now)
    session.spent_at = now if spent else session.spent_at
    return bool(spent)


# Coarse names for the browser and the system, most specific first: enough to tell "the
# customer's admin on a Mac" from "someone on a phone", not enough to track anyone.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def client_description(user_agent: str) -> str:
    """ "Firefox on Linux" from a User-Agent; "Unknown browser" when it names none we know."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    if not browser:
        return f"Unknown browser on {system}" if system else "Unknown browser"
    return f"{browser} on {system}" if system else browser


def connect_session_record_open(*, session: ConnectSession, user_agent: str) -> None:
    """Note that a hand-off link was opened: when, and by what kind of client."""
    if not session.is_handoff:
        return
    if ConnectSessionOpen.objects.filter(session=session).count() >= HANDOFF_OPENS_KEPT:
        return
    ConnectSessionOpen.objects.create(
        session=session, client=client_description(user_agent or "")[:80]
    )


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


SESSION_LENGTH_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_JSON_BYTES = 16_384


def parse_session_length(
    value: str | None, *, default: timedelta = MAX_SESSION_LIFETIME
) -> timedelta:
    """``"30m"``, ``"1h"``, ``"90s"``, ``"7d"`` → a timedelta; ``default`` when not given."""
    if not value:
        return default
    match = re.fullmatch(r"(\d{1,7})([smhd])", value.strip())
    if not match:
        raise Invalid(
            f'session_length {value!r} is not a length like "30m", "1h", "90s" or "7d".',
            code="invalid_session_length",
            fields={"session_length": "Use a number followed by s, m, h or d."},
        )
    return timedelta(seconds=int(match.group(1)) * SESSION_LENGTH_UNITS[match.group(2)])


def _bounded_json(value: dict[str, Any] | None, *, field: str) -> dict[str, Any]:
    value = value or {}
    if len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
        raise Invalid(
            f"{field} is too large (at most {MAX_JSON_BYTES // 1024} KB of JSON).",
            code="payload_too_large",
            fields={field: "Too large."},
        )
    return value


def connect_session_open(
    *,
    tenant: Tenant,
    end_user: dict[str, Any],
    deployment_id: Any = None,
    apps: list[str] | None = None,
    allow_multiple: bool = True,
    redirect_uri: str = "",
    session_length: str | None = None,
    theme: dict[str, Any] | None = None,
    consumer_metadata: dict[str, Any] | None = None,
    custom_settings: dict[str, Any] | None = None,
    source: str = ConnectSession.Source.API,
    locale: str = "",
    handoff: dict[str, Any] | None = None,
) -> IssuedSession:
    """The sessions API's use case: resolve and check everything, then issue the session.

    With ``handoff`` ({recipient_name?, recipient_email?, single_use?}), a hand-off link whose
    length defaults to the tenant's hand-off maximum. Nothing is written unless every input is
    valid (the end user is upserted last).
    """
    link = None
    if handoff is not None:
        email = (handoff.get("recipient_email") or "").strip()
        if email:
            try:
                validate_email(email)
            except ValidationError as exc:
                raise Invalid(
                    "handoff.recipient_email is not an email address.",
                    code="invalid_recipient_email",
                    fields={"handoff.recipient_email": "Not an email address."},
                ) from exc
        link = Handoff(
            recipient_name=(handoff.get("recipient_name") or "").strip()[:200],
            recipient_email=email,
            single_use=bool(handoff.get("single_use")),
        )
    lifetime = parse_session_length(
        session_length,
        default=handoff_max_lifetime(tenant=tenant) if link else MAX_SESSION_LIFETIME,
    )
    deployment = None
    if deployment_id is not None:
        deployment = Deployment.objects.filter(tenant=tenant, pk=deployment_id).first()
        if deployment is None:
            raise NotFound(
                f"No deployment {deployment_id} for this tenant.", code="deployment_not_found"
            )
        if not deployment.is_active:
            raise Invalid(
                f"The deployment “{deployment.name}” is not active; activate it in the admin.",
                code="deployment_inactive",
                fields={"deployment_id": "Inactive."},
            )
    allowlist: list[App] = []
    if apps:
        slugs = list(dict.fromkeys(apps))
        offered = {
            app.slug: app
            for app in app_list_offered(tenant=tenant, deployment=deployment).filter(slug__in=slugs)
        }
        unknown = [slug for slug in slugs if slug not in offered]
        unusable = _not_connectable_reasons(tenant=tenant, slugs=unknown)
        if unusable:
            raise Invalid(
                "Not connectable: " + " ".join(unusable.values()),
                code="app_not_connectable",
                fields={"apps": " ".join(unusable.values())},
            )
        if unknown:
            raise Invalid(
                f"Unknown app(s) in apps: {', '.join(unknown)}. Use the slugs of apps used by a "
                "published flow in an active deployment"
                + (f" (“{deployment.name}”)." if deployment else "."),
                code="unknown_app",
                fields={"apps": f"Unknown: {', '.join(unknown)}"},
            )
        allowlist = [offered[slug] for slug in slugs]
    consumer_metadata = _bounded_json(consumer_metadata, field="consumer_metadata")
    custom_settings = _bounded_json(custom_settings, field="custom_settings")
    with transaction.atomic():
        user = end_user_upsert_checked(
            tenant=tenant,
            external_id=end_user.get("id"),
            profile=end_user,
            field_prefix="end_user.",
            code="invalid_end_user",
        ).end_user
        return connect_session_create(
            tenant=tenant,
            end_user=user,
            deployment=deployment,
            apps=allowlist,
            allow_multiple=allow_multiple,
            redirect_uri=redirect_uri or "",
            lifetime=lifetime,
            theme=theme,
            consumer_metadata=consumer_metadata,
            custom_settings=custom_settings,
            locale=locale,
            source=source,
            handoff=link,
        )


USER_HASH_SESSION_LIFETIME = timedelta(minutes=30)
HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")


def connect_session_from_user_hash(
    *, tenant_id: str, user_id: str, user_hash: str, deployment_id: str | None = None
) -> IssuedSession:
    """Integry's user-hash entry: a page opens the modal without a server call of its own.

    ``user_hash`` is the hex HMAC-SHA256 of the user id under the tenant's signing secret,
    compared in constant time. Every failure says the same thing, so the answer never tells
    whether a tenant exists or has the mode switched off.
    """

    refused = Invalid(
        "This link could not be verified: the user hash does not match. Reopen the "
        "connection page from the product you were using.",
        code="invalid_user_hash",
    )
    user_id = (user_id or "").strip()
    if (
        not user_id
        or len(user_id) > 255
        or CONTROL_CHARACTERS.search(user_id)
        or not HEX_HASH.fullmatch(user_hash or "")
    ):
        raise refused
    try:
        tenant = Tenant.objects.filter(pk=tenant_id).first()
    except (ValueError, ValidationError):
        tenant = None
    if tenant is None or not tenant.user_hash_enabled or not tenant.has_secret:
        raise refused
    expected = tenant_user_hash(tenant=tenant, user_id=user_id)
    if not hmac.compare_digest(expected, user_hash.lower()):
        raise refused
    with transaction.atomic():
        deployment = None
        if deployment_id:
            try:
                deployment = Deployment.objects.filter(
                    tenant=tenant, pk=deployment_id, is_active=True
                ).first()
            except (ValueError, ValidationError):
                deployment = None
            if deployment is None:
                raise Invalid(
                    "This connection page points at a deployment that does not exist or is not "
                    "active. Ask the product's support team to check its embedding.",
                    code="deployment_not_found",
                )
        end_user = end_user_upsert(tenant=tenant, external_id=user_id)
        return connect_session_create(
            tenant=tenant,
            end_user=end_user,
            deployment=deployment,
            lifetime=USER_HASH_SESSION_LIFETIME,
            source=ConnectSession.Source.USER_HASH,
        )

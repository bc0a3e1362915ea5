"""The modal's connect use cases: OAuth2 (start, callback, cancel), API-key and basic forms,
reconnecting an account in place, retrying a failed verification, renaming and disconnecting,
and the end user's installations of the flows that use an account.

Every function takes the connect session the modal was opened with and acts only inside it: its
tenant, its end user and the apps it offers. The secret-handling parts are the shared services
(``credentials``, ``oauth``, ``verification``, ``installations``); this module only orders them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from core.conf import conf
from core.errors import Conflict, Invalid, NotFound
from core.tokens import hash_token
from core.validators import origin_of
from core.vault import VaultError, clear_secret, open_secret, seal_secret
from integrations.models import App, ConnectSession, Credential, Flow, Installation, OAuthAttempt
from integrations.services.credentials import (
    credential_create_from_fields,
    credential_delete,
    credential_fields_clean,
    credential_secret_store,
)
from integrations.services.events import credential_event_data, event_emit
from integrations.services.installations import (
    installation_install,
    installation_set_enabled,
    installation_update,
)
from integrations.services.jobs import verification_enqueue
from integrations.services.oauth import (
    OAuthError,
    TokenSet,
    credential_tokens_store,
    oauth_authorization_url,
    oauth_client_for,
    oauth_exchange_code,
    oauth_revoke,
    pkce_pair,
)
from integrations.services.verification import (
    VerificationOutcome,
    credential_verify,
    verification_probe,
)

ATTEMPT_RETENTION = timedelta(days=1)
CLEANUP_BATCH = 500
MAX_LABEL_LENGTH = 120


def end_user_actor(session: ConnectSession) -> Actor:
    return Actor.end_user(session.end_user_id)


def oauth_redirect_uri() -> str:
    """The callback registered at every provider: ``{PORTAL_BASE_URL}/connect/oauth/callback/``."""
    return conf.BASE_URL + reverse("connect:oauth_callback")


def _user_credentials(session: ConnectSession, app: App):
    return Credential.objects.filter(
        tenant_id=session.tenant_id, end_user_id=session.end_user_id, app=app
    )


def _check_may_add(session: ConnectSession, app: App) -> None:
    """Without allow_multiple, one account per app: a second one is a reconnect instead."""
    if session.allow_multiple:
        return
    existing = _user_credentials(session, app).exclude(status=Credential.Status.REVOKED).first()
    if existing is not None:
        raise Conflict(
            f"You already connected a {app.name} account ({existing.display_name}). "
            "Reconnect it to sign in again, or disconnect it first.",
            code="already_connected",
        )


def _check_owned(session: ConnectSession, credential: Credential, app: App | None = None) -> None:
    if (
        credential.tenant_id != session.tenant_id
        or credential.end_user_id != session.end_user_id
        or (app is not None and credential.app_id != app.pk)
    ):
        raise NotFound("No such account.", code="not_found")


# --- OAuth2 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthStart:
    attempt: OAuthAttempt
    authorization_url: str


def oauth_connect_start(
    *,
    session: ConnectSession,
    app: App,
    mode: str = OAuthAttempt.Mode.POPUP,
    flow: Flow | None = None,
    reconnect: Credential | None = None,
    return_query: dict[str, str] | None = None,
    session_token: str = "",
) -> OAuthStart:
    """Begin an authorization: a fresh state and PKCE pair, remembered for ten minutes.

    ``reconnect`` names the account whose secret the new authorization will replace. For the
    full-page redirect, ``session_token`` is sealed with the verifier so that the callback can
    lead back to the modal without a cookie.
    """
    if not app.is_oauth2:
        raise Invalid(f"{app.name} connects with a form, not a sign-in.", code="not_oauth2")
    if reconnect is not None:
        _check_owned(session, reconnect, app)
    else:
        _check_may_add(session, app)
    try:
        client = oauth_client_for(tenant=session.tenant, app=app)
    except OAuthError as exc:
        raise Invalid(str(exc), code=exc.code or "oauth_client_missing") from exc
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    now = timezone.now()
    attempt = OAuthAttempt(
        tenant_id=session.tenant_id,
        session=session,
        app=app,
        flow=flow,
        purpose=OAuthAttempt.Purpose.RECONNECT if reconnect else OAuthAttempt.Purpose.CONNECT,
        reconnect=reconnect,
        state_hash=hash_token(state),
        mode=mode,
        return_query=urlencode(return_query or {})[:1000],
        created_at=now,
        expires_at=now + timedelta(seconds=OAuthAttempt.LIFETIME_SECONDS),
    )
    sealed = {"code_verifier": verifier}
    if mode == OAuthAttempt.Mode.REDIRECT:
        sealed["session_token"] = session_token
    with transaction.atomic():
        seal_secret(attempt, sealed)
        attempt.save()
        _attempts_cleanup(now=now)
    url = oauth_authorization_url(
        client=client,
        redirect_uri=oauth_redirect_uri(),
        state=state,
        code_challenge=challenge,
    )
    return OAuthStart(attempt=attempt, authorization_url=url)


def _attempts_cleanup(*, now) -> None:
    """Forget finished or abandoned attempts after a day, a batch at a time."""
    old = OAuthAttempt.objects.filter(expires_at__lt=now - ATTEMPT_RETENTION).values_list(
        "pk", flat=True
    )[:CLEANUP_BATCH]
    OAuthAttempt.objects.filter(pk__in=list(old)).delete()


@dataclass(frozen=True)
class OAuthCallbackResult:
    """What the callback tells the person in the popup, and where a redirect goes back to."""

    ok: bool
    message: str
    attempt: OAuthAttempt | None = None
    return_url: str = ""


def _refused(message: str) -> OAuthCallbackResult:
    return OAuthCallbackResult(ok=False, message=message)


def _finish(
    attempt: OAuthAttempt,
    *,
    outcome: str,
    message: str,
    error_code: str = "",
    credential: Credential | None = None,
    identity: str = "",
    already_existed: bool = False,
) -> OAuthAttempt:
    """Record how an attempt ended; a failure without an account is reported to the outbox."""
    with transaction.atomic():
        attempt.outcome = outcome
        attempt.message = message[:600]
        attempt.error_code = error_code[:64]
        attempt.credential = credential
        attempt.identity = identity[:255]
        attempt.already_existed = already_existed
        attempt.finished_at = timezone.now()
        clear_secret(attempt)
        attempt.save()
        if outcome != OAuthAttempt.Outcome.CONNECTED and credential is None:
            # The credential.* events cover every outcome that left an account; this one
            # reports the attempts that did not (denied, closed, refused, provider down).
            session = attempt.session
            event_emit(
                tenant=attempt.tenant,
                type="credential.authorization_failed",
                data={
                    "app": attempt.app.slug,
                    "user_id": session.end_user.external_id,
                    "user_email": session.end_user.email,
                    "flow_id": str(attempt.flow_id) if attempt.flow_id else None,
                    "reconnect_credential_id": (
                        str(attempt.reconnect_id) if attempt.reconnect_id else None
                    ),
                    "reason": error_code or outcome,
                    "message": attempt.message,
                },
            )
    return attempt


def _return_url(attempt: OAuthAttempt, token: str) -> str:
    if attempt.mode != OAuthAttempt.Mode.REDIRECT or not token:
        return ""
    query = attempt.return_query
    extra = urlencode({"app": attempt.app.slug, "attempt": str(attempt.pk)})
    base = conf.BASE_URL + reverse("connect:modal", kwargs={"token": token})
    return f"{base}?{query + '&' if query else ''}{extra}"


def oauth_connect_callback(*, params: dict[str, str]) -> OAuthCallbackResult:
    """The provider sent the browser back: check the state, exchange the code, keep the account.

    Nothing is stored unless the state is known, unused, unexpired and its session still open,
    the provider granted access, and the code exchange succeeded.
    """
    state = params.get("state") or ""
    attempt = (
        OAuthAttempt.objects.select_related("app", "tenant", "session__end_user", "session__tenant")
        .filter(state_hash=hash_token(state[:200]))
        .first()
        if state
        else None
    )
    if attempt is None:
        return _refused(
            "This sign-in did not start from your connect window (its state is unknown), so it "
            "was ignored and nothing was connected. Close this window and start again from the "
            "product you were using."
        )
    # Single use, also against two concurrent callbacks: only one claims the row.
    now = timezone.now()
    claimed = OAuthAttempt.objects.filter(pk=attempt.pk, used_at__isnull=True).update(used_at=now)
    if not claimed:
        attempt.refresh_from_db()
        if attempt.outcome == OAuthAttempt.Outcome.CANCELLED:
            message = (
                f"This {attempt.app.name} sign-in was cancelled in the connect window, so "
                "nothing was connected. Start again there if you want to connect the account."
            )
        else:
            message = (
                f"This {attempt.app.name} sign-in answer was already used, so it was ignored. "
                "Nothing else was changed; close this window."
            )
        return OAuthCallbackResult(ok=False, message=message, attempt=None)
    attempt.used_at = now
    try:
        sealed = open_secret(attempt) if attempt.has_secret else {}
    except VaultError:
        sealed = {}
    token = sealed.get("session_token", "")
    app = attempt.app

    def fail(code: str, message: str) -> OAuthCallbackResult:
        _finish(attempt, outcome=OAuthAttempt.Outcome.FAILED, message=message, error_code=code)
        return OAuthCallbackResult(
            ok=False, message=message, attempt=attempt, return_url=_return_url(attempt, token)
        )

    if attempt.is_expired(now):
        return fail(
            "state_expired",
            f"The {app.name} sign-in took longer than 10 minutes, so it was not accepted and "
            "nothing was connected. Start again from the connect window.",
        )
    if not attempt.session.is_usable:
        return fail(
            "session_closed",
            "Your connect session ended before the sign-in finished, so nothing was connected. "
            "Reopen the connection page from the product you were using.",
        )
    issuer = params.get("iss")
    if issuer and origin_of(issuer) != origin_of(app.authorization_url):
        # RFC 9207: the answer came from another authorization server than the one we asked.
        return fail(
            "issuer_mismatch",
            f"The sign-in answer did not come from {app.name}, so it was refused and nothing "
            "was connected.",
        )
    error = params.get("error")
    if error:
        if error == "access_denied":
            return fail(
                "access_denied",
                f"You did not allow access to your {app.name} account, so nothing was "
                "connected. You can try again whenever you like.",
            )
        description = (params.get("error_description") or "")[:200]
        return fail(
            error[:64],
            f"{app.name} could not complete the sign-in ({error[:64]}"
            + (f": {description}" if description else "")
            + "). Nothing was connected; try again.",
        )
    code = params.get("code")
    if not code or "code_verifier" not in sealed:
        return fail(
            "invalid_response",
            f"{app.name} answered without an authorization code. Nothing was connected; try again.",
        )
    try:
        client = oauth_client_for(tenant=attempt.tenant, app=app)
        tokens = oauth_exchange_code(
            client=client,
            code=code[:2000],
            redirect_uri=oauth_redirect_uri(),
            code_verifier=sealed["code_verifier"],
        )
    except OAuthError as exc:
        if exc.transient:
            return fail(
                "provider_unavailable",
                f"{app.name} is not answering right now ({exc}). Nothing was connected; try "
                "again in a few minutes.",
            )
        return fail(
            exc.code or "token_refused",
            f"{app.name} refused to complete the sign-in: {exc} Nothing was connected; "
            "start again.",
        )
    if attempt.purpose == OAuthAttempt.Purpose.RECONNECT:
        result = _reconnect_with_tokens(attempt, client=client, tokens=tokens)
    else:
        result = _connect_with_tokens(attempt, tokens=tokens)
    return OAuthCallbackResult(
        ok=result.outcome == OAuthAttempt.Outcome.CONNECTED,
        message=result.message,
        attempt=result,
        return_url=_return_url(result, token),
    )


def _finish_with_verification(
    attempt: OAuthAttempt, outcome: VerificationOutcome, *, fallback: Credential
) -> OAuthAttempt:
    credential = outcome.credential or fallback
    app = attempt.app
    if outcome.kind == "verified":
        who = credential.identity or credential.display_name
        message = (
            f"Your {app.name} account {who} was already connected; it is now up to date."
            if outcome.already_existed
            else f"Connected your {app.name} account {who}."
        )
        if attempt.purpose == OAuthAttempt.Purpose.RECONNECT:
            message = f"Reconnected your {app.name} account {who}."
        return _finish(
            attempt,
            outcome=OAuthAttempt.Outcome.CONNECTED,
            message=message,
            credential=credential,
            identity=credential.identity,
            already_existed=outcome.already_existed,
        )
    if outcome.kind == "rejected":
        return _finish(
            attempt,
            outcome=OAuthAttempt.Outcome.FAILED,
            error_code="verification_failed",
            message=outcome.reason or f"{app.name} refused the new account.",
            credential=credential,
            identity=credential.identity,
        )
    # The provider did not answer the verification: the account is kept, pending, and the
    # background job verifies it; the modal keeps showing "verifying" meanwhile.
    verification_enqueue(credential_id=credential.pk)
    return _finish(
        attempt,
        outcome=OAuthAttempt.Outcome.CONNECTED,
        message=f"Signed in to {app.name}; we are still checking the account.",
        credential=credential,
    )


def _connect_with_tokens(attempt: OAuthAttempt, *, tokens: TokenSet) -> OAuthAttempt:
    session = attempt.session
    actor = end_user_actor(session)
    with transaction.atomic():
        credential = Credential(
            tenant_id=session.tenant_id,
            end_user=session.end_user,
            app=attempt.app,
            status=Credential.Status.PENDING,
        )
        credential_tokens_store(credential=credential, tokens=tokens)
        credential.save()
        audit_record(
            tenant=session.tenant, actor=actor, action="credential.create", credential=credential
        )
        event_emit(
            tenant=session.tenant,
            type="credential.created",
            data=credential_event_data(credential),
        )
    outcome = credential_verify(credential_id=credential.pk, actor=actor)
    return _finish_with_verification(attempt, outcome, fallback=credential)


def _revoke_quietly(client, tokens: TokenSet) -> None:
    """Hand back tokens we will not keep (best effort: the provider may not support it)."""
    for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "")):
        if token:
            oauth_revoke(client=client, token=token, token_type_hint=hint or "access_token")


def _reconnect_with_tokens(attempt: OAuthAttempt, *, client, tokens: TokenSet) -> OAuthAttempt:
    app = attempt.app
    target = attempt.reconnect
    if target is None:
        _revoke_quietly(client, tokens)
        return _finish(
            attempt,
            outcome=OAuthAttempt.Outcome.FAILED,
            error_code="credential_gone",
            message=f"The {app.name} account was disconnected meanwhile; connect it again.",
        )
    problem = _identity_problem(target, app=app, secret=tokens.secret)
    if problem:
        _revoke_quietly(client, tokens)
        code, message = problem
        return _finish(
            attempt,
            outcome=OAuthAttempt.Outcome.FAILED,
            error_code=code,
            message=message,
            identity=target.identity,
        )
    _replace_secret(attempt.session, target, tokens=tokens)
    outcome = credential_verify(credential_id=target.pk, actor=end_user_actor(attempt.session))
    return _finish_with_verification(attempt, outcome, fallback=target)


def _identity_problem(
    target: Credential, *, app: App, secret: dict[str, Any]
) -> tuple[str, str] | None:
    """Ask the provider who the new secret belongs to before it replaces ``target``'s."""
    probe = verification_probe(app=app, secret=secret)
    if probe.kind == "unavailable":
        return (
            "provider_unavailable",
            f"{app.name} is not answering right now ({probe.reason}). Your account was not "
            "changed; try again in a few minutes.",
        )
    if probe.kind == "rejected":
        return ("verification_failed", f"{probe.reason} Your account was not changed.")
    if target.identity and probe.identity and probe.identity != target.identity:
        return (
            "identity_mismatch",
            f"You signed in to {app.name} as {probe.identity}, but this account is "
            f"{target.identity}. Sign in as {target.identity} to reconnect it, or add "
            f"{probe.identity} as another account. Nothing was changed.",
        )
    return None


@transaction.atomic
def _replace_secret(
    session: ConnectSession,
    target: Credential,
    *,
    tokens: TokenSet | None = None,
    secret: dict[str, Any] | None = None,
) -> Credential:
    """Put the new secret on the existing row: its id, label and installations stay."""
    credential = (
        Credential.objects.select_for_update(of=("self",))
        .select_related("app", "tenant", "end_user")
        .get(pk=target.pk)
    )
    if tokens is not None:
        credential_tokens_store(credential=credential, tokens=tokens)
    else:
        credential_secret_store(credential=credential, secret=secret or {})
        credential.expires_at = credential.refresh_at = None
    credential.status = Credential.Status.PENDING
    credential.last_verification_error = ""
    credential.verification_attempts = 0
    credential.save()
    audit_record(
        tenant=credential.tenant,
        actor=end_user_actor(session),
        action="credential.reconnect",
        credential=credential,
    )
    return credential


def oauth_attempt_cancel(
    *, session: ConnectSession, attempt: OAuthAttempt, reason: str = "cancelled"
) -> OAuthAttempt:
    """The person closed the sign-in window or pressed Cancel: a late answer is refused."""
    if attempt.session_id != session.pk:
        raise NotFound("No such sign-in.", code="not_found")
    claimed = OAuthAttempt.objects.filter(pk=attempt.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    attempt.refresh_from_db()
    if not claimed or attempt.is_finished:
        return attempt
    closed = reason == "closed"
    return _finish(
        attempt,
        outcome=OAuthAttempt.Outcome.CANCELLED,
        error_code="closed" if closed else "cancelled",
        message=(
            f"You closed the {attempt.app.name} sign-in window before finishing, so nothing "
            "was connected."
            if closed
            else f"You cancelled the {attempt.app.name} sign-in, so nothing was connected."
        ),
    )


def oauth_attempt_expire_if_due(*, attempt: OAuthAttempt) -> OAuthAttempt:
    """An attempt nobody finished within ten minutes ends as failed (the modal stops waiting)."""
    if attempt.is_finished or not attempt.is_expired():
        return attempt
    claimed = OAuthAttempt.objects.filter(pk=attempt.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    if not claimed:
        attempt.refresh_from_db()
        return attempt
    return _finish(
        attempt,
        outcome=OAuthAttempt.Outcome.FAILED,
        error_code="state_expired",
        message=(
            f"The {attempt.app.name} sign-in was not finished within 10 minutes, so nothing "
            "was connected. Start again when you are ready."
        ),
    )


# --- API-key and basic forms ----------------------------------------------------------------


def api_key_connect(
    *, session: ConnectSession, app: App, fields: dict[str, Any], label: str = ""
) -> Credential:
    """Store the form's secret, pending; verification starts when the transaction commits.

    Raises ValidationError naming each bad field, or a DomainError.
    """
    if app.is_oauth2:
        raise Invalid(f"{app.name} connects through a sign-in window.", code="oauth2_app")
    _check_may_add(session, app)
    return credential_create_from_fields(
        end_user=session.end_user,
        app=app,
        fields=fields,
        label=label,
        actor=end_user_actor(session),
    )


@dataclass(frozen=True)
class ReconnectResult:
    credential: Credential
    verified: bool
    message: str


def api_key_reconnect(
    *, session: ConnectSession, credential: Credential, fields: dict[str, Any]
) -> ReconnectResult:
    """Replace an API-key account's secret in place once the provider confirms it is the same
    account; a key of another account, or one the provider refuses, changes nothing."""
    _check_owned(session, credential)
    app = credential.app
    secret = credential_fields_clean(app=app, fields=fields)
    problem = _identity_problem(credential, app=app, secret=secret)
    if problem:
        code, message = problem
        raise Invalid(message, code=code)
    _replace_secret(session, credential, secret=secret)
    outcome = credential_verify(credential_id=credential.pk, actor=end_user_actor(session))
    current = outcome.credential or credential
    if outcome.kind == "verified":
        return ReconnectResult(
            current, True, f"Reconnected your {app.name} account {current.display_name}."
        )
    if outcome.kind == "unavailable":
        verification_enqueue(credential_id=credential.pk)
    return ReconnectResult(current, False, outcome.reason)


def credential_verification_retry(*, session: ConnectSession, credential: Credential) -> Credential:
    """Check a failed account again with the secret it has (the provider may have been wrong)."""
    _check_owned(session, credential)
    if credential.app.is_oauth2 or not credential.has_secret:
        raise Invalid(
            f"Sign in to {credential.app.name} again to fix this account.", code="reconnect_needed"
        )
    with transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(
            status=Credential.Status.PENDING,
            last_verification_error="",
            verification_attempts=0,
            updated_at=timezone.now(),
        )
        audit_record(
            tenant=session.tenant,
            actor=end_user_actor(session),
            action="credential.retry",
            credential=credential,
        )
        verification_enqueue(credential_id=credential.pk)
    return Credential.objects.select_related("app").filter(pk=credential.pk).first() or credential


# --- Managing an account --------------------------------------------------------------------


def credential_rename(*, session: ConnectSession, credential: Credential, label: str) -> Credential:
    _check_owned(session, credential)
    label = " ".join((label or "").split())
    if len(label) > MAX_LABEL_LENGTH:
        raise ValidationError(
            {"label": f"At most {MAX_LABEL_LENGTH} characters."}, code="label_too_long"
        )
    with transaction.atomic():
        credential.label = label
        credential.save(update_fields=["label", "updated_at"])
        audit_record(
            tenant=session.tenant,
            actor=end_user_actor(session),
            action="credential.rename",
            credential=credential,
        )
    return credential


@dataclass(frozen=True)
class Disconnected:
    event_data: dict[str, Any]
    switched_off: list[str]


def credential_disconnect(*, session: ConnectSession, credential: Credential) -> Disconnected:
    """Revoke at the provider where it can, remove the account, and say which flows stopped."""
    _check_owned(session, credential)
    switched_off = list(
        Installation.objects.filter(credential_links__credential=credential, enabled=True)
        .order_by("flow__name")
        .values_list("flow__name", flat=True)
        .distinct()
    )
    data = credential_delete(credential=credential, actor=end_user_actor(session))
    return Disconnected(event_data=data, switched_off=switched_off)


# --- Installations of the flows that use an account ---------------------------------------------


def _installation_for(session: ConnectSession, flow: Flow, credential: Credential):
    return (
        Installation.objects.select_related("flow", "end_user", "tenant")
        .filter(
            tenant_id=session.tenant_id,
            end_user_id=session.end_user_id,
            flow=flow,
            credential_links__credential=credential,
        )
        .first()
    )


@transaction.atomic
def installation_switch(
    *, session: ConnectSession, flow: Flow, credential: Credential, enabled: bool
) -> tuple[Installation | None, str]:
    """Switch a flow on or off for one account; switching on installs it where it is not.

    All or nothing: a flow that cannot be switched on is not left installed either.
    """
    _check_owned(session, credential)
    actor = end_user_actor(session)
    installation = _installation_for(session, flow, credential)
    if installation is None:
        if not enabled:
            return None, f"“{flow.name}” is off."
        installation, created = installation_install(
            end_user=session.end_user,
            flow=flow,
            credential=credential,
            allow_multiple=session.allow_multiple,
            actor=actor,
        )
        installation = _installation_for(session, flow, credential) or installation
        if not created:
            note = f"“{flow.name}” now uses {credential.display_name}."
            if installation.enabled:
                return installation, note
            enabled_now = installation_set_enabled(
                installation=installation, enabled=True, actor=actor
            )
            return enabled_now, note
        if not installation.enabled:
            installation_set_enabled(installation=installation, enabled=True, actor=actor)
        return installation, f"“{flow.name}” is on."
    installation_set_enabled(installation=installation, enabled=enabled, actor=actor)
    return installation, f"“{flow.name}” is {'on' if enabled else 'off'}."


def installation_settings_save(
    *, session: ConnectSession, installation: Installation, settings: dict[str, Any]
) -> Installation:
    if installation.end_user_id != session.end_user_id:
        raise NotFound("No such installation.", code="not_found")
    merged = {**installation.settings, **settings}
    return installation_update(
        installation=installation, settings=merged, actor=end_user_actor(session)
    )


def installation_workflows_save(
    *, session: ConnectSession, installation: Installation, keys: list[str]
) -> Installation:
    if installation.end_user_id != session.end_user_id:
        raise NotFound("No such installation.", code="not_found")
    return installation_update(
        installation=installation, enabled_workflows=keys, actor=end_user_actor(session)
    )

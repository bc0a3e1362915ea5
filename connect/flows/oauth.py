"""The sign-in window: start an OAuth2 authorization, take the provider's answer, cancel it.

An authorization in progress lives in its ``OAuthAttempt`` (hashed single-use state, sealed
PKCE verifier, ten minutes), never in a credential. Only when the provider's tokens pass the
entry rule (``verification.credential_connect``) does a credential exist; tokens that are not
kept (refused, provider down, another account than the one reconnected) are revoked at the
provider, best effort.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from connect.flows.access import check_may_add, check_may_connect, check_owned, end_user_actor
from connect.messages import connection_sentence, say
from core.conf import conf
from core.errors import DomainError, Invalid, NotFound
from core.redact import redact
from core.tokens import hash_token
from core.validators import origin_of
from core.vault import VaultError, clear_secret, open_secret, seal_secret
from integrations.models import App, ConnectSession, Credential, Flow, OAuthAttempt
from integrations.services.connect_sessions import connect_session_spend
from integrations.services.credentials import NewSecret
from integrations.services.events import event_emit
from integrations.services.oauth import (
    OAuthClient,
    OAuthError,
    TokenSet,
    oauth_authorization_url,
    oauth_client_for,
    oauth_exchange_code,
    oauth_revoke,
    pkce_pair,
)
from integrations.services.verification import ConnectKind, credential_connect

ATTEMPT_RETENTION = timedelta(days=1)
# The attempt's error code (and the authorization_failed event's reason) for each refusal.
FAILURE_CODES = {
    ConnectKind.REJECTED: "verification_failed",
    ConnectKind.UNAVAILABLE: "provider_unavailable",
    ConnectKind.IDENTITY_MISMATCH: "identity_mismatch",
}
CLEANUP_BATCH = 500


def oauth_redirect_uri() -> str:
    """The callback registered at every provider: ``{PORTAL_BASE_URL}/connect/oauth/callback/``."""
    return conf.BASE_URL + reverse("connect:oauth_callback")


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
        raise Invalid(say("not_oauth2", app=app.name), code="not_oauth2")
    check_may_connect(session)
    if reconnect is not None:
        check_owned(session, reconnect, app)
    else:
        check_may_add(session, app)
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
        prompt=app.add_account_prompt if _adds_another(session, app, reconnect) else "",
    )
    return OAuthStart(attempt=attempt, authorization_url=url)


def _adds_another(session: ConnectSession, app: App, reconnect: Credential | None) -> bool:
    """Whether this sign-in adds a second account: the provider, which remembers the first one,
    is asked to let the person choose or sign in again."""
    if reconnect is not None or not app.add_account_prompt:
        return False
    return (
        Credential.objects.filter(
            tenant_id=session.tenant_id, end_user_id=session.end_user_id, app=app
        )
        .exclude(status=Credential.Status.REVOKED)
        .exists()
    )


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
        return _refused(say("state_unknown"))
    # Single use, also against two concurrent callbacks: only one claims the row.
    now = timezone.now()
    claimed = OAuthAttempt.objects.filter(pk=attempt.pk, used_at__isnull=True).update(used_at=now)
    if not claimed:
        attempt.refresh_from_db()
        if attempt.outcome == OAuthAttempt.Outcome.CANCELLED:
            message = say("state_cancelled", app=attempt.app.name)
        else:
            message = say("state_used", app=attempt.app.name)
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
        return fail("state_expired", say("state_expired", app=app.name))
    if not attempt.session.is_usable:
        return fail("session_closed", say("session_closed"))
    if attempt.session.is_spent:  # another sign-in spent the single-use link meanwhile
        return fail("handoff_spent", say("handoff_spent"))
    issuer = params.get("iss")
    if issuer and origin_of(issuer) != origin_of(app.authorization_url):
        # RFC 9207: the answer came from another authorization server than the one we asked.
        return fail("issuer_mismatch", say("issuer_mismatch", app=app.name))
    error = params.get("error")
    if error:
        if error == "access_denied":
            return fail("access_denied", say("access_denied", app=app.name))
        # The provider's words, which may quote what it was sent: never kept with a token in them.
        error = redact(error)[:64]
        description = redact(params.get("error_description") or "")[:200]
        detail = error + (f": {description}" if description else "")
        return fail(error, say("provider_error", app=app.name, error=detail))
    code = params.get("code")
    if not code or "code_verifier" not in sealed:
        return fail("invalid_response", say("invalid_response", app=app.name))
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
            return fail("provider_unavailable", say("token_unavailable", app=app.name, reason=exc))
        return fail(exc.code or "token_refused", say("token_refused", app=app.name, reason=exc))
    result = _keep_tokens(attempt, client=client, tokens=tokens)
    if result.outcome != OAuthAttempt.Outcome.CONNECTED:
        return OAuthCallbackResult(
            ok=False, message=result.message, attempt=result, return_url=_return_url(result, token)
        )
    return OAuthCallbackResult(
        ok=result.outcome == OAuthAttempt.Outcome.CONNECTED,
        message=result.message,
        attempt=result,
        return_url=_return_url(result, token),
    )


def _keep_tokens(attempt: OAuthAttempt, *, client: OAuthClient, tokens: TokenSet) -> OAuthAttempt:
    """The entry rule for the provider's tokens: a credential that holds them, or nothing."""
    app = attempt.app
    session = attempt.session
    reconnect = None
    if attempt.purpose == OAuthAttempt.Purpose.RECONNECT:
        reconnect = attempt.reconnect
        if reconnect is None:
            _revoke_quietly(client, tokens)
            return _finish(
                attempt,
                outcome=OAuthAttempt.Outcome.FAILED,
                error_code="credential_gone",
                message=say("credential_gone", app=app.name),
            )
    try:
        connection = credential_connect(
            end_user=session.end_user,
            app=app,
            new=NewSecret(tokens=tokens),
            actor=end_user_actor(session),
            reconnect=reconnect,
        )
    except DomainError as exc:  # the account went away, or changed hands, meanwhile
        _revoke_quietly(client, tokens)
        return _finish(
            attempt, outcome=OAuthAttempt.Outcome.FAILED, error_code=exc.code, message=exc.message
        )
    message = connection_sentence(connection, app=app.name, reconnecting=reconnect is not None)
    if not connection.ok:
        _revoke_quietly(client, tokens)
        return _finish(
            attempt,
            outcome=OAuthAttempt.Outcome.FAILED,
            error_code=FAILURE_CODES[connection.kind],
            message=message,
            identity=connection.identity,
        )
    credential = connection.credential
    connect_session_spend(session=session)
    return _finish(
        attempt,
        outcome=OAuthAttempt.Outcome.CONNECTED,
        message=message,
        credential=credential,
        identity=credential.identity,
        already_existed=connection.already_existed,
    )


def _revoke_quietly(client: OAuthClient, tokens: TokenSet) -> None:
    """Hand back tokens we will not keep (best effort: the provider may not support it)."""
    for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "")):
        if token:
            oauth_revoke(client=client, token=token, token_type_hint=hint or "access_token")


def oauth_attempt_cancel(
    *, session: ConnectSession, attempt: OAuthAttempt, reason: str = "cancelled"
) -> OAuthAttempt:
    """The person closed the sign-in window or pressed Cancel: a late answer is refused."""
    if attempt.session_id != session.pk:
        raise NotFound(say("attempt_not_found"), code="not_found")
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
        message=say("closed" if closed else "cancelled", app=attempt.app.name),
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
        message=say("attempt_expired", app=attempt.app.name),
    )

"""The sandbox's own sign-in, kept in a signed cookie apart from Django's session.

The sandbox plays another website. Signing into it must not sign anyone into the portal (or out
of the admin), and a staff member's admin session must never pass for a sandbox account, so it
does not use ``django.contrib.auth.login`` or the session at all.
"""

from __future__ import annotations

from posixpath import normpath
from urllib.parse import unquote, urlsplit

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme

from sandbox.models import SandboxAccount

COOKIE_NAME = "sandbox_account"
COOKIE_SALT = "sandbox.signin"
COOKIE_MAX_AGE = 12 * 60 * 60


def _cookie_path() -> str:
    return reverse("sandbox:home")


def sign_in(response: HttpResponse, *, request: HttpRequest, account: SandboxAccount) -> None:
    # The password's session hash goes into the cookie so that a password change signs out.
    value = f"{account.pk}:{account.user.get_session_auth_hash()}"
    response.set_signed_cookie(
        COOKIE_NAME,
        value,
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        path=_cookie_path(),
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )


def sign_out(response: HttpResponse) -> None:
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(), samesite="Lax")


def signed_in_account(request: HttpRequest) -> SandboxAccount | None:
    value = request.get_signed_cookie(
        COOKIE_NAME, default=None, salt=COOKIE_SALT, max_age=COOKIE_MAX_AGE
    )
    if not value:
        return None
    account_id, _, auth_hash = value.partition(":")
    if not account_id.isdigit():
        return None
    account = SandboxAccount.objects.select_related("user").filter(pk=int(account_id)).first()
    if account is None or not account.user.is_active:
        return None
    if not constant_time_compare(auth_hash, account.user.get_session_auth_hash()):
        return None
    return account


def safe_next_url(value: str | None) -> str:
    """Where to go after signing in: a relative path inside the sandbox, or the sandbox home."""
    home = _cookie_path()
    if not value or not url_has_allowed_host_and_scheme(value, allowed_hosts=set()):
        return home
    parts = urlsplit(value)
    # Browsers resolve "..", also percent-encoded, so judge the path they will actually fetch.
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or not path.startswith(home):
        return home
    if normpath(path) != path.rstrip("/") or "\\" in path:
        return home
    return value

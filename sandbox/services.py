"""What the sandbox provider does: its accounts, OAuth clients, API keys and items, and who a
request to its API acts for.

The sandbox is a stand-in for a third-party provider, so the demo and the tests run offline. Its
OAuth2 server is django-oauth-toolkit; this module only prepares what DOT needs (users, clients)
and checks the credentials its small API accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import Application, get_access_token_model, get_application_model

from sandbox.models import SandboxAccount, SandboxApiKey, SandboxItem

SANDBOX_PASSWORD = "sandbox"
SANDBOX_DEFAULT_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("alice@sandbox.test", "Alice Sandbox"),
    ("bob@sandbox.test", "Bob Sandbox"),
    ("carol@sandbox.test", "Carol Sandbox"),
)
# The username marks sandbox users apart from staff; ":" cannot come from a sign-up form.
SANDBOX_USERNAME_PREFIX = "sandbox:"
API_KEY_PREFIX = "sbx_"
API_KEY_LOOKUP_LENGTH = 12


class SandboxAuthenticationError(Exception):
    """A credential the sandbox API refuses; the message is the reason told to the client."""


def _normalize_email(email: str) -> str:
    return email.strip().lower()


def _hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def sandbox_account_ensure(*, email: str, display_name: str, password: str) -> SandboxAccount:
    """Create the sandbox account for ``email``, or bring its name and password up to date."""
    email = _normalize_email(email)
    if not password:
        raise ValidationError({"password": "A sandbox account needs a password."})
    user_model = get_user_model()
    with transaction.atomic():
        account = (
            SandboxAccount.objects.select_for_update()
            .select_related("user")
            .filter(email=email)
            .first()
        )
        if account is None:
            # No email on the user on purpose: staff sign in by email through allauth, and a
            # sandbox account must never be able to sign into the portal itself.
            user, _ = user_model.objects.get_or_create(
                username=f"{SANDBOX_USERNAME_PREFIX}{email}",
                defaults={"is_staff": False, "is_superuser": False},
            )
            account = SandboxAccount(user=user, email=email, display_name=display_name)
            account.full_clean()
            account.save()
        else:
            account.display_name = display_name
            account.full_clean()
            account.save(update_fields=["display_name"])

        user = account.user
        if not user.check_password(password) or user.is_staff or user.is_superuser:
            user.set_password(password)
            user.is_staff = False
            user.is_superuser = False
            user.is_active = True
            user.save(update_fields=["password", "is_staff", "is_superuser", "is_active"])
    return account


def sandbox_seed() -> list[SandboxAccount]:
    """Create the default sandbox accounts, each with a couple of items; safe to run again."""
    accounts = []
    with transaction.atomic():
        for email, display_name in SANDBOX_DEFAULT_ACCOUNTS:
            account = sandbox_account_ensure(
                email=email, display_name=display_name, password=SANDBOX_PASSWORD
            )
            if not account.items.exists():
                first_name = display_name.split()[0]
                SandboxItem.objects.bulk_create(
                    [
                        SandboxItem(account=account, title=f"{first_name}'s first item"),
                        SandboxItem(account=account, title=f"{first_name}'s second item"),
                    ]
                )
            accounts.append(account)
    return accounts


def sandbox_account_authenticate(*, email: str, password: str) -> SandboxAccount | None:
    """The sandbox account with this email and password, for the sandbox's own sign-in page."""
    account = (
        SandboxAccount.objects.select_related("user").filter(email=_normalize_email(email)).first()
    )
    if account is None:
        # Hash anyway, so an unknown email takes as long to refuse as a wrong password.
        get_user_model()().set_password(password)
        return None
    if account.user.is_active and account.user.check_password(password):
        return account
    return None


def sandbox_application_ensure(
    *,
    client_id: str,
    client_secret: str,
    redirect_uris: list[str],
    name: str = "Connect portal",
) -> Application:
    """Register (or update) a confidential authorization-code client of the sandbox's OAuth server.

    PKCE is required for every client by the OAUTH2_PROVIDER settings; consent is always asked.
    """
    if not client_id or not client_secret:
        raise ValidationError("A sandbox OAuth client needs a client id and a client secret.")
    application_model = get_application_model()
    with transaction.atomic():
        application = application_model.objects.select_for_update().filter(
            client_id=client_id
        ).first() or application_model(client_id=client_id)
        application.name = name
        application.client_type = application_model.CLIENT_CONFIDENTIAL
        application.authorization_grant_type = application_model.GRANT_AUTHORIZATION_CODE
        application.redirect_uris = " ".join(redirect_uris)
        application.skip_authorization = False
        application.algorithm = application_model.NO_ALGORITHM
        application.hash_client_secret = True
        if application.pk is None or not check_password(client_secret, application.client_secret):
            # DOT hashes a plaintext secret when the row is saved; an unchanged secret keeps
            # its existing hash.
            application.client_secret = client_secret
        application.full_clean()
        application.save()
    return application


def sandbox_api_key_create(*, account: SandboxAccount, name: str) -> tuple[SandboxApiKey, str]:
    """Issue an API key for ``account``; the plaintext is returned here once and never stored."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name."})
    key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    while SandboxApiKey.objects.filter(prefix=key[:API_KEY_LOOKUP_LENGTH]).exists():
        key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    api_key = SandboxApiKey(
        account=account,
        name=name,
        prefix=key[:API_KEY_LOOKUP_LENGTH],
        key_hash=_hash_api_key(key),
    )
    api_key.full_clean()
    api_key.save()
    return api_key, key


def sandbox_api_key_revoke(*, api_key: SandboxApiKey) -> SandboxApiKey:
    """Revoke an API key; revoking it again keeps the first revocation time."""
    with transaction.atomic():
        locked = SandboxApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    api_key.revoked_at = locked.revoked_at
    return api_key


def _api_key_account(key: str) -> SandboxAccount:
    if not key.startswith(API_KEY_PREFIX) or len(key) <= API_KEY_LOOKUP_LENGTH:
        raise SandboxAuthenticationError("The API key is unknown.")
    api_key = (
        SandboxApiKey.objects.select_related("account__user")
        .filter(prefix=key[:API_KEY_LOOKUP_LENGTH])
        .first()
    )
    if api_key is None or not hmac.compare_digest(_hash_api_key(key), api_key.key_hash):
        raise SandboxAuthenticationError("The API key is unknown.")
    # Said only to the holder of the whole key, so it leaks nothing to a guesser.
    if api_key.revoked_at is not None:
        raise SandboxAuthenticationError("The API key has been revoked.")
    if not api_key.account.user.is_active:
        raise SandboxAuthenticationError("The API key's account is disabled.")
    return api_key.account


def sandbox_api_key_authenticate(*, key: str) -> SandboxAccount | None:
    """The account an active API key belongs to, or None for an unknown or revoked key."""
    try:
        return _api_key_account(key)
    except SandboxAuthenticationError:
        return None


def _access_token_account(token: str) -> SandboxAccount:
    # The same lookup DOT's validator does (by checksum), so that expiry can be told apart
    # from an unknown token in the error; DOT deletes an access token when it is revoked.
    checksum = hashlib.sha256(token.encode()).hexdigest()
    access_token = (
        get_access_token_model()
        .objects.select_related("user__sandbox_account")
        .filter(token_checksum=checksum)
        .first()
    )
    if access_token is None:
        raise SandboxAuthenticationError("The access token is unknown or has been revoked.")
    if not access_token.is_valid():
        raise SandboxAuthenticationError("The access token has expired.")
    user = access_token.user
    account = getattr(user, "sandbox_account", None) if user is not None else None
    if account is None or not user.is_active:
        raise SandboxAuthenticationError("The access token does not belong to a sandbox account.")
    return account


def _basic_account(value: str) -> SandboxAccount:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SandboxAuthenticationError("The Basic credentials are not valid base64.") from None
    email, separator, key = decoded.partition(":")
    if not separator or not email or not key:
        raise SandboxAuthenticationError("Basic credentials must be email:API key.")
    account = _api_key_account(key)
    if account.email != _normalize_email(email):
        raise SandboxAuthenticationError("The API key does not belong to this email.")
    return account


def sandbox_api_request_authenticate(
    *, authorization: str = "", api_key: str = ""
) -> SandboxAccount:
    """The account a request to the sandbox API acts for, from its credential headers.

    ``authorization`` is the Authorization header (a Bearer access token, or Basic
    ``email:API key``); ``api_key`` is the X-API-Key header, used when there is no Authorization.
    Raises SandboxAuthenticationError saying why the credential is refused.
    """
    authorization = authorization.strip()
    if not authorization:
        if api_key.strip():
            return _api_key_account(api_key.strip())
        raise SandboxAuthenticationError(
            "No credential: send a Bearer access token, an X-API-Key header "
            "or HTTP Basic email:API key."
        )
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise SandboxAuthenticationError("The Bearer access token is missing.")
        return _access_token_account(value)
    if scheme.lower() == "basic":
        return _basic_account(value)
    raise SandboxAuthenticationError("Only Bearer and Basic authorization are supported.")


def sandbox_item_create(*, account: SandboxAccount, title: str) -> SandboxItem:
    """Add an item to a sandbox account."""
    item = SandboxItem(account=account, title=title.strip())
    item.full_clean()
    item.save()
    return item

"""Staff two-factor sign-in: once TOTP is on, the admin needs the authenticator code too."""

import base64
import hashlib
import hmac
import struct
import time

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership
from accounts.services.tenants import tenant_create


def totp(secret: str, *, at: float | None = None) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits), written out so the test does not trust the server."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = struct.pack(">Q", int((at or time.time()) // 30))
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


@pytest.fixture
def staff(db):
    tenant = tenant_create(name="Acme")
    user = get_user_model().objects.create_user(
        username="staff@acme.test", email="staff@acme.test", password="pw-123456789", is_staff=True
    )
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    Membership.objects.create(user=user, tenant=tenant)
    return user


def sign_in(client):
    return client.post(
        reverse("account_login"), {"login": "staff@acme.test", "password": "pw-123456789"}
    )


def test_with_totp_on_the_admin_needs_the_authenticator_code(client, staff):
    sign_in(client)
    # Turning 2FA on is a sensitive change: allauth asks for the password again first.
    client.post(reverse("account_reauthenticate"), {"password": "pw-123456789"})
    page = client.get(reverse("mfa_activate_totp"))
    secret = page.context["form"].secret
    # Activate with the previous step's code (within the one-step tolerance), so that signing in
    # below can use the current step's code: a code is accepted only once.
    response = client.post(
        reverse("mfa_activate_totp"), {"code": totp(secret, at=time.time() - 30)}
    )
    assert response.status_code == 302
    client.post(reverse("account_logout"))

    response = sign_in(client)
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get("/admin/").status_code == 302  # not signed in until the code is given

    wrong = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert wrong.status_code == 200 and b"Incorrect code" in wrong.content
    right = client.post(reverse("mfa_authenticate"), {"code": totp(secret)})
    assert right.status_code == 302
    assert client.get("/admin/").status_code == 200

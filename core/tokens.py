"""Random tokens that are shown once and stored only as a SHA-256 hash."""

import hashlib
import hmac
import secrets


def new_token(prefix: str = "", *, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), expected_hash)

"""Redaction: what a provider (or a webhook receiver) says never carries a secret further.

Providers echo what they were sent ("Invalid API key provided: sk_live_…", a refresh token in
an ``invalid_grant`` description). Every such text goes through ``redact`` before it is stored,
logged, shown or sent, with the secret values the caller holds for that call. It removes:

- each secret value, and any run of ``FRAGMENT_LENGTH`` or more of its characters (a long
  prefix or suffix of a key, a key cut short by the provider);
- whatever looks like a token whatever its origin: a ``Bearer``/``Basic`` credential, a
  ``token=…``/``"client_secret": "…"`` pair, a JSON Web Token, and keys in well-known formats
  (``sk_live_…``, ``whsec_…``, ``ghp_…``, ``xoxb-…``, ours ``cp_sk_…``).

The function is pure and knows nothing of credentials: the callers pass the values
(``integrations.services.secrets.secret_values`` lists a credential's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# A run this long of a secret's characters is a piece of the secret, not a coincidence.
FRAGMENT_LENGTH = 8
# Shorter values are removed only where they stand whole (a short password, say).
MIN_VALUE_LENGTH = 4

_TOKEN = r"[A-Za-z0-9._~+/=-]"
_SECRET_NAME = (
    r"access_token|refresh_token|id_token|client_secret|api[_-]?key|apikey|password|passwd"
    r"|secret|token|x-api-key"
)
TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization schemes: keep the scheme, drop the credential (which has a digit, unlike
    # the words of a sentence such as "Bearer authentication failed").
    (
        re.compile(rf"(?i)\b(bearer|basic)(\s+)(?={_TOKEN}*\d){_TOKEN}{{8,}}"),
        rf"\1\2{REDACTED}",
    ),
    # token=… in a query string or form body, and "client_secret": "…" in JSON.
    (re.compile(rf"(?i)\b({_SECRET_NAME})=(?!\[redacted\])[^\s&\"',;]{{4,}}"), rf"\1={REDACTED}"),
    (
        re.compile(rf'(?i)("(?:{_SECRET_NAME})"\s*:\s*")(?!\[redacted\])[^"]{{4,}}"'),
        rf'\1{REDACTED}"',
    ),
    # JSON Web Tokens.
    (re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{4,}"), REDACTED),
    # Keys in well-known formats (Stripe, Standard Webhooks, GitHub, Slack, AWS, ours).
    (
        re.compile(
            r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{6,}|whsec_[A-Za-z0-9+/=]{8,}"
            r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_\w{16,}|xox[abeprs]-[A-Za-z0-9-]{8,}"
            r"|AKIA[0-9A-Z]{16}|cp_sk_[\w-]{8,})"
        ),
        REDACTED,
    ),
)


def _covered_spans(text: str, value: str) -> list[tuple[int, int]]:
    """Where ``value``, or a run of FRAGMENT_LENGTH+ of its characters, stands in ``text``."""
    if len(value) < FRAGMENT_LENGTH:
        spans, start = [], text.find(value)
        while start != -1:
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
        return spans
    spans = []
    # Every run of FRAGMENT_LENGTH+ characters is a chain of overlapping FRAGMENT_LENGTH-grams,
    # so marking each gram's occurrences and merging covers the whole run (in C-speed finds).
    for gram in {value[i : i + FRAGMENT_LENGTH] for i in range(len(value) - FRAGMENT_LENGTH + 1)}:
        start = text.find(gram)
        while start != -1:
            spans.append((start, start + FRAGMENT_LENGTH))
            start = text.find(gram, start + 1)
    return spans


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the ``secrets`` (and pieces of them) and without token-looking strings."""
    if not text:
        return text
    values = {value for value in secrets if isinstance(value, str)}
    spans = [
        span
        for value in values
        if len(value) >= MIN_VALUE_LENGTH
        for span in _covered_spans(text, value)
    ]
    if spans:
        spans.sort()
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        pieces, position = [], 0
        for start, end in merged:
            pieces += [text[position:start], REDACTED]
            position = end
        text = "".join([*pieces, text[position:]])
    for pattern, replacement in TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_bytes(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``redact`` for a body that may not be UTF-8 (latin-1 maps every byte to itself)."""
    if not body:
        return body
    try:
        return redact(body.decode("utf-8"), secrets).encode("utf-8")
    except UnicodeDecodeError:
        return redact(body.decode("latin-1"), secrets).encode("latin-1", errors="replace")

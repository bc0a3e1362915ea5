"""The app list's whole page, from a shell rendered once per look and the request's own parts.

Everything on the list page but the list's items (the head, the theme's CSS, the side panel,
the search form, the count, the scripts: most of the template engine's work on this page) is
the same for every session of a tenant that looks the same. ``list_page_html`` renders
``connect/modal.html`` once per process for each such look, with slots where the request's
own parts go, and for each request fills in:

- the items (``connect/app_list.py``: the cached catalog with this end user's accounts, read
  from the database with the session on every request: no account is in a shell);
- the session token (in URLs and the htmx headers) and the CSP nonce, each escaped as the
  template would have escaped it.

The shell is memoised in this process by its whole input: the context it is rendered from
(the theme, the embedding parameters, the tenant's name, whose accounts a hand-off link
connects, the number of apps listed, the sentences of the language) and the language. A page
with a search text or a prompt (an app that is not offered), which anyone holding a link could
vary at will, is rendered by the template instead, so it cannot crowd out the looks in use;
so is every page under DEBUG, where runserver reloads templates and translations in place.
A change to any of them is another key, so an entry cannot go
stale and needs no invalidation, and nothing of it is shared with another process (no Redis:
an outage changes nothing here). The stand-in session and request give the template only what
it reads; ``tests/connect/test_list_page.py`` holds the page to be byte for byte what the
template renders without the shell.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from connect.session import EMBED_HEADER, SESSION_HEADER

LIST_TEMPLATE = "connect/modal.html"

# One prefix per process; a slot is the prefix and a letter. The shell holds no data of a
# request, only these.
_PREFIX = secrets.token_hex(16)
_SLOTS = {name: f"{_PREFIX}{name}" for name in "TNI"}
_SLOT_RE = re.compile(f"{_PREFIX}([TNI])")
# Tokens we issue are URL-safe: reverse() and json.dumps leave them as they are, and escape()
# does too, so one replacement serves the URLs, the JSON header and the attributes.
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,100}")

SHELL_MEMO_SIZE = 256
_shell_memo: dict[tuple, tuple[str, ...]] = {}


@dataclass(frozen=True)
class _Tenant:
    name: str


@dataclass(frozen=True)
class _Session:
    """What the shell reads of the connect session."""

    tenant: _Tenant
    is_handoff: bool
    end_user: str


@dataclass(frozen=True)
class _Request:
    """What the shell reads of the request (a whole page: not htmx)."""

    csp_nonce: str
    htmx: bool = False


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    return value


def _shell(context: dict[str, Any]) -> tuple[str, ...]:
    """The page for ``context`` with slots for the token, the nonce and the items, as literal
    text and slot letters alternating."""
    session = context["session"]
    shell_context = {
        "theme": context["theme"],
        "embed": context["embed"],
        "portal_origin": context["portal_origin"],
        "say_popup_title": context["say_popup_title"],
        "say_popup_opening": context["say_popup_opening"],
        "query": context["query"],
        "prompt": context.get("prompt"),
        "app_count": context["app_count"],
        "session": _Session(
            tenant=_Tenant(name=session.tenant.name),
            is_handoff=session.is_handoff,
            end_user=str(session.end_user) if session.is_handoff else "",
        ),
    }
    key = (get_language(), _hashable(shell_context))
    parts = _shell_memo.get(key)
    if parts is None:
        headers = {SESSION_HEADER: _SLOTS["T"]}
        if context["embed"].query:
            headers[EMBED_HEADER] = context["embed"].query
        html = render_to_string(
            LIST_TEMPLATE,
            {
                **shell_context,
                "token": _SLOTS["T"],
                "hx_headers": json.dumps(headers),
                "request": _Request(csp_nonce=_SLOTS["N"]),
                "app_items": mark_safe(_SLOTS["I"]),  # noqa: S308 (a slot: hex digits)
            },
        )
        parts = tuple(_SLOT_RE.split(html))
        if len(_shell_memo) >= SHELL_MEMO_SIZE:
            _shell_memo.clear()  # simplest bound, safe with threads
        _shell_memo[key] = parts
    return parts


def list_page_html(request: HttpRequest, context: dict[str, Any]) -> str | None:
    """The list page (a whole page, not htmx) for ``context`` (``render_app_list``'s), or None
    when this page is not one the shell can serve (then render the template as usual)."""
    token = context["token"]
    if (
        request.htmx
        or context.get("initial_events")
        or context["query"]
        or context.get("prompt")
        or settings.DEBUG
        or not _PLAIN_TOKEN.fullmatch(token)
    ):
        return None
    try:
        parts = _shell(context)
    except TypeError:  # a theme value that cannot be a key (saved without validation)
        return None
    values = {
        "T": escape(token),
        "N": escape(str(request.csp_nonce)),  # asking for it puts it in the CSP header
        "I": context["app_items"],
    }
    # Odd positions are slot letters (re.split keeps the group), even ones literal text.
    return "".join(values[part] if index % 2 else part for index, part in enumerate(parts))

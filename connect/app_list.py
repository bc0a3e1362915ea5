"""The modal's app list, rendered from a cached catalog and the end user's (uncached) accounts.

Rendering 40 apps with the template engine and asking the database which apps a session
offers cost most of the list page. Both depend only on the tenant's catalog, so the rendered
items are cached, and only the end user's accounts are read and placed in them per request.

The cached catalog (``CatalogEntry``), in Django's cache:

- is the app items as HTML, rendered with ``connect/modal.html#app-item``, holding slots (random
  strings chosen for each entry) where the session token, the embedding parameters, the call
  to action and the accounts go; plus each app's id and search text. Nothing secret: the
  token is never in it, and the apps' JSON definitions and OAuth clients are not read.
- is keyed by everything that scopes or shapes the list: the tenant, its ``catalog_version``
  (replaced by every write that changes the catalog, ``integrations/catalog_changes.py``), its
  own app, the session's deployment, the session itself when it has an app allowlist, the
  language, and ``SCHEMA`` (the templates and static files it was rendered from).
  Two sessions share an entry only when all of these are equal, that is when they list the
  same apps the same way.
- cannot go stale: a write replaces the version in the tenant's row, in the write's own
  transaction, and the version is read with the session (no extra query). Old entries are
  never asked for again and expire (``CATALOG_TTL``). The version is not held in the cache, so
  when Redis is down and each process falls back to its own memory (``core/cache.py``), a
  process cannot keep a version another process has moved: the worst an outage does is that
  each process renders the catalog once more.

The end user's accounts are read on every request (one query) and never cached across
requests: their state changes outside any request (verification, refresh, expiry jobs).
Rendering them is memoised in this process by their content (every field the compact account
shows, and the language), so the memo cannot show anything but what was just read.

Search filters the cached catalog in Python (name, slug, description) instead of asking the
database again.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from integrations.icons import app_icon
from integrations.models import App, ConnectSession, Credential
from integrations.selectors import (
    ListedAccount,
    app_catalog_for_session,
    app_search_matches,
    credentials_by_app_for_session,
)

ITEM_TEMPLATE = "connect/modal.html#app-item"
ACCOUNTS_TEMPLATE = "connect/modal.html#app-accounts"


def _schema() -> str:
    """What the cached items were rendered from besides the database: the template, the
    translations (the catalog's descriptions too) and the static files' manifest."""
    base = Path(settings.BASE_DIR)
    digest = hashlib.sha256(b"app-list 1")
    digest.update((base / "templates/connect/modal.html").read_bytes())
    for catalog in sorted(base.glob("*/locale/*/LC_MESSAGES/django.mo")):
        digest.update(catalog.read_bytes())
    for catalog in sorted(base.glob("locale/*/LC_MESSAGES/django.mo")):
        digest.update(catalog.read_bytes())
    digest.update(getattr(staticfiles_storage, "manifest_hash", "").encode())
    return digest.hexdigest()[:16]


# A cached catalog outlives no deployment of new templates, translations or static files.
SCHEMA = _schema()
CATALOG_TTL = 3600
ACCOUNTS_MEMO_SIZE = 4096


@dataclass(frozen=True)
class CatalogItem:
    app_id: int
    name: str
    # What the search box looks in, besides the name.
    slug: str
    description: str
    # The item's HTML cut at its two per-user slots: before the call to action, between it
    # and the accounts, after the accounts.
    parts: tuple[str, str, str]


@dataclass(frozen=True)
class CatalogEntry:
    token_slot: str
    keep_slot: str
    items: tuple[CatalogItem, ...]


def catalog_key(session: ConnectSession) -> str:
    tenant = session.tenant
    # Without the annotation (a session not read by connect_session_for_token) assume a filter.
    allowlist = session.pk if getattr(session, "has_app_allowlist", True) else "-"
    return (
        f"connect:app-catalog:{SCHEMA}:{tenant.pk}:{tenant.catalog_version}:"
        f"{tenant.own_app_id or '-'}:{session.deployment_id or '-'}:{allowlist}:{get_language()}"
    )


def _render_catalog(session: ConnectSession) -> CatalogEntry:
    slot = secrets.token_hex(16)
    token_slot, keep_slot, cta_slot, accounts_slot = (slot + end for end in "TKCA")
    items = []
    for app in app_catalog_for_session(session=session):
        html = render_to_string(
            ITEM_TEMPLATE,
            {
                "app": app,
                "icon": app_icon(app),
                "token": token_slot,
                "keep": keep_slot,
                "cta": cta_slot,
                "accounts": accounts_slot,
            },
        )
        head, rest = html.split(cta_slot)
        middle, tail = rest.split(accounts_slot)
        items.append(
            CatalogItem(
                app_id=app.pk,
                name=app.name,
                slug=app.slug,
                description=app.description,
                parts=(head, middle, tail),
            )
        )
    return CatalogEntry(token_slot=token_slot, keep_slot=keep_slot, items=tuple(items))


# The entries this process used last, by key: a key names one content for good (its version is
# never reused), so keeping them here cannot serve anything stale, and saves a cache round trip.
_catalog_memo: dict[str, CatalogEntry] = {}
CATALOG_MEMO_SIZE = 256


def app_catalog(session: ConnectSession) -> CatalogEntry:
    """The session's rendered catalog: from this process, the cache, or rendered (and cached)
    now."""
    key = catalog_key(session)
    entry = _catalog_memo.get(key)
    if entry is None:
        entry = cache.get(key)
        if entry is None:
            entry = _render_catalog(session)
            cache.set(key, entry, CATALOG_TTL)
        if len(_catalog_memo) >= CATALOG_MEMO_SIZE:
            _catalog_memo.clear()  # simplest bound, safe with threads
        _catalog_memo[key] = entry
    return entry


# This process's slot for the session token in memoised accounts HTML.
_ACCOUNTS_TOKEN_SLOT = secrets.token_hex(16) + "T"
_accounts_memo: dict[tuple, str] = {}


def _accounts_html(item: CatalogItem, accounts: list[ListedAccount], language: str) -> str:
    """The compact list of the app's accounts; the key holds every field it shows."""
    key = (
        language,
        item.app_id,
        item.name,
        tuple((a.id, a.status, a.label, a.identity) for a in accounts),
    )
    html = _accounts_memo.get(key)
    if html is None:
        app = App(pk=item.app_id, name=item.name)  # what display_name and the labels read
        credentials = [
            Credential(
                pk=UUID(a.id),
                app=app,
                status=a.status,
                label=a.label,
                identity=a.identity,
            )
            for a in accounts
        ]
        html = render_to_string(
            ACCOUNTS_TEMPLATE,
            {
                "app": app,
                "credentials": credentials,
                "token": _ACCOUNTS_TOKEN_SLOT,
            },
        )
        if len(_accounts_memo) >= ACCOUNTS_MEMO_SIZE:
            _accounts_memo.clear()  # simplest bound, safe with threads
        _accounts_memo[key] = html
    return html


def _accounts_by_app(session: ConnectSession) -> dict[int, list[ListedAccount]]:
    """The end user's accounts by app, oldest first: read with the session when the lookup
    could (``connect_session_for_token(with_accounts=True)`` on PostgreSQL), else now."""
    by_app: dict[int, list[ListedAccount]] = defaultdict(list)
    listed = getattr(session, "listed_accounts", None)
    if listed is None:
        listed = [
            ListedAccount(c.app_id, str(c.pk), c.status, c.label, c.identity)
            for credentials in credentials_by_app_for_session(session=session).values()
            for c in credentials
        ]
    for account in listed:
        by_app[account.app_id].append(account)
    return by_app


@dataclass(frozen=True)
class AppList:
    html: SafeString
    count: int


def app_list_render(*, session: ConnectSession, token: str, keep: str, query: str) -> AppList:
    """The list's items (the apps matching ``query``, each with the end user's accounts), as
    HTML for ``token``'s page, and how many there are."""
    entry = app_catalog(session)
    query = " ".join(query.split())[:100]
    by_app = _accounts_by_app(session)
    manage, connect = _("Manage"), _("Connect")
    language = get_language()
    pieces = []
    count = 0
    for item in entry.items:
        if query and not app_search_matches(
            query, name=item.name, slug=item.slug, description=item.description
        ):
            continue
        count += 1
        head, middle, tail = item.parts
        accounts = by_app.get(item.app_id)
        if accounts:
            accounts = _accounts_html(item, accounts, language)
            pieces += (head, manage, middle, accounts, tail)
        else:
            pieces += (head, connect, middle, tail)
    safe_token = escape(token)
    html = (
        "".join(pieces)
        .replace(entry.token_slot, safe_token)
        .replace(_ACCOUNTS_TOKEN_SLOT, safe_token)
        .replace(entry.keep_slot, escape(keep))
    )
    # The pieces are template output (escaped there); the token and keep were escaped above.
    return AppList(html=mark_safe(html), count=count)  # noqa: S308

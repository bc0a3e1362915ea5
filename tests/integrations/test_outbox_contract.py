"""The outbox contract, as a stateful property: the event stream is the truth a tenant syncs from.

Random sequences of what end users do in the modal and what the tenant does through the API run
against the sandbox provider under live_server. After every step, replaying the tenant's
``credential.*`` events (``created`` adds a credential, ``deleted`` removes it, any other event
naming a credential sets its status) must give exactly the credentials, with their statuses,
that ``GET /api/v1/credentials`` lists; no event may name a credential that was never created,
and every ``credential.created`` names a credential that exists or was deleted later. A model of
what each step should do (which account it connects, which attempt must leave nothing) is
checked against the API as well.

"The provider is down" is a per-tenant copy of each sandbox app whose API base URL can be
pointed at a closed local port: sign-ins and keys still reach the sandbox, verification cannot.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
import requests
from django.test import Client
from hypothesis import HealthCheck, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from integrations.models import App, Credential, Event
from integrations.services.oauth_clients import oauth_client_set
from sandbox.catalog import SANDBOX_API_KEY, SANDBOX_OAUTH, sandbox_catalog_apps_ensure
from sandbox.models import SandboxAccount, SandboxApiKey
from sandbox.services import (
    sandbox_api_key_create,
    sandbox_api_key_revoke,
    sandbox_application_ensure,
    sandbox_seed,
)
from tests import factories
from tests.api.conftest import ApiClient, client_for
from tests.connect.helpers import path_and_query
from tests.sandbox.helpers import TIMEOUT, form_fields, sandbox_sign_in

CLIENT_ID = "outbox-contract-tests"
CLIENT_SECRET = "outbox-contract-client-secret"
ACCOUNTS = ("alice@sandbox.test", "bob@sandbox.test", "carol@sandbox.test")
WRONG_KEY = "sbx_" + "0" * 24  # well-formed, unknown to the sandbox
FLAKY_KEY = "flaky-apikey"
FLAKY_OAUTH = "flaky-oauth"
KEY_APPS = (SANDBOX_API_KEY, FLAKY_KEY)
OAUTH_APPS = (SANDBOX_OAUTH, FLAKY_OAUTH)
FLAKY_APPS = (FLAKY_KEY, FLAKY_OAUTH)
LABELS = ("", "Work", "  Main   key ", "Zoë's", "x" * 121)
PAGE_SIZE = 2  # small, so that listing goes through next_cursor
MAX_PENDING_SIGN_INS = 3
MAX_SESSIONS_PER_USER = 3
MAX_OUTAGES = 3
MEANWHILE = (
    "the account is disconnected",
    "the user is deleted",
    "the provider goes down or comes back",
    "the same account signs in in another window",
)
# Sized for the file to finish within 90 s on a 2-core CI machine (PostgreSQL).
MAX_EXAMPLES = 10
STEPS = 20

# --- The contract, as a function that can be shown to fail ------------------------------------


def outbox_violations(
    events: Iterable[tuple[str, dict[str, Any]]], listed: dict[str, str]
) -> list[str]:
    """Replay ``(type, data)`` events in order against what the API lists (id → status) and say
    every way they disagree; an empty list means the outbox tells the truth."""
    problems: list[str] = []
    replayed: dict[str, str] = {}
    created: set[str] = set()
    for position, (type_, data) in enumerate(events):
        if not type_.startswith("credential."):
            continue
        where = f"event #{position} {type_}"
        credential_id = data.get("credential_id")
        if type_ == "credential.authorization_failed":
            if credential_id:
                problems.append(f"{where} names credential {credential_id}; it should name none")
            reconnected = data.get("reconnect_credential_id")
            if reconnected and reconnected not in created:
                problems.append(f"{where} names {reconnected}, which was never created")
            continue
        if not credential_id:
            problems.append(f"{where} names no credential")
            continue
        if type_ == "credential.created":
            if credential_id in created:
                problems.append(f"{where}: {credential_id} was created twice")
            created.add(credential_id)
            replayed[credential_id] = data.get("status")
        elif credential_id not in created:
            problems.append(f"{where} names {credential_id}, which was never created")
        elif credential_id not in replayed:
            problems.append(f"{where} names {credential_id} after its credential.deleted")
        elif type_ == "credential.deleted":
            del replayed[credential_id]
        else:
            replayed[credential_id] = data.get("status")
    for credential_id in sorted(set(replayed) - set(listed)):
        problems.append(
            f"credential.created {credential_id} has no later credential.deleted, "
            "but the API does not list it"
        )
    for credential_id in sorted(set(listed) - set(replayed)):
        problems.append(f"the API lists {credential_id}, which the outbox does not have")
    for credential_id in sorted(set(listed) & set(replayed)):
        if listed[credential_id] != replayed[credential_id]:
            problems.append(
                f"{credential_id}: the outbox says {replayed[credential_id]!r}, "
                f"the API says {listed[credential_id]!r}"
            )
    return problems


def test_the_replay_finds_every_way_an_outbox_can_lie():
    def event(type_: str, credential_id: str | None, status: str = "active") -> tuple:
        data = {"status": status}
        if credential_id:
            data["credential_id"] = credential_id
        return (type_, data)

    truthful = [
        event("credential.created", "a"),
        event("credential.verified", "a"),
        ("credential.authorization_failed", {"reason": "access_denied"}),
        event("credential.created", "b"),
        event("credential.verification_failed", "b", "invalid"),
        event("credential.revoked", "a", "revoked"),
        event("credential.deleted", "a", "revoked"),
        ("installation.created", {"credential_id": "never-mind"}),
    ]
    assert outbox_violations(truthful, {"b": "invalid"}) == []

    lies = {
        "a created credential that vanished without credential.deleted": (truthful, {}),
        "a listed credential the outbox never created": (truthful, {"b": "invalid", "c": "active"}),
        "a status the outbox did not report": (truthful, {"b": "active"}),
        "an event for a credential never created": (
            [*truthful, event("credential.renamed", "ghost")],
            {"b": "invalid"},
        ),
        "an event after its credential was deleted": (
            [*truthful, event("credential.verified", "a")],
            {"b": "invalid"},
        ),
        "created twice": (
            [*truthful, event("credential.created", "b", "invalid")],
            {"b": "invalid"},
        ),
        "a failed sign-in that names a credential": (
            [*truthful, event("credential.authorization_failed", "b", "invalid")],
            {"b": "invalid"},
        ),
        "a reconnect of a credential never created": (
            [*truthful, ("credential.authorization_failed", {"reconnect_credential_id": "z"})],
            {"b": "invalid"},
        ),
        "events out of order": (
            [event("credential.verified", "c"), event("credential.created", "c")],
            {"c": "active"},
        ),
    }
    for lie, (events, listed) in lies.items():
        assert outbox_violations(events, listed), f"the replay missed {lie}"


# --- The world of one example -----------------------------------------------------------------


def closed_port() -> int:
    """A local port nothing listens on once the socket is closed: a provider that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hx(token: str) -> dict[str, str]:
    """Headers of the modal's htmx requests: the session travels in X-Portal-Session."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_X_PORTAL_SESSION": token}


def page_events(response) -> list[dict]:
    return json.loads(response["HX-Trigger"])["portal-events"]["events"]


class Browser:
    """The person's browser at the sandbox: one signed-in session per sandbox account."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.sessions: dict[str, requests.Session] = {}

    def answer(self, authorization_url: str, *, email: str, allow: bool) -> str:
        """Sign in as ``email`` (once), press Allow or Deny; the URL sent back to the portal."""
        browser = self.sessions.get(email)
        if browser is None:
            browser = requests.Session()
            assert sandbox_sign_in(browser, self.base_url, email=email).status_code == 302
            self.sessions[email] = browser
        page = browser.get(authorization_url, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code == 302 and "/sandbox/login/" in page.headers["Location"]:
            # prompt=login (another account): already signed in, back to the authorization.
            next_url = path_and_query(page.headers["Location"])[1]["next"]
            page = browser.get(self.base_url + next_url, allow_redirects=False, timeout=TIMEOUT)
        assert page.status_code == 200, page.text
        fields = form_fields(page.text, form_id="authorizationForm")
        if allow:
            fields["allow"] = "on"
        answer = browser.post(page.url, data=fields, allow_redirects=False, timeout=TIMEOUT)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


@dataclass
class Tracked:
    """What the test expects of one credential."""

    app: str
    identity: str
    status: str = Credential.Status.ACTIVE
    key_revoked: bool = False  # the API key it holds was revoked at the sandbox


@dataclass
class SignIn:
    """An OAuth sign-in started in the modal and not yet answered."""

    attempt_id: str
    url: str
    app: str
    token: str
    reconnect: str | None
    session_gone: bool = False


@dataclass
class World:
    """What every example shares: the sandbox under live_server, its accounts and catalog apps."""

    base_url: str
    browser: Browser
    accounts: dict[str, SandboxAccount]
    catalog: dict[str, App]
    serial: Iterator[int] = field(default_factory=lambda: count(1))


class OutboxContract(RuleBasedStateMachine):
    """One tenant, one end user at a time (a new one after a deletion), driven through the modal
    and the API; the outbox and the API are compared after every step."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.client = Client()
        self.tenant = factories.make_tenant(name="Outbox")
        self.api: ApiClient = client_for(self.tenant)
        self.apps = self._apps()
        flow = factories.make_flow(tenant=self.tenant, apps=list(self.apps.values()), name="All")
        self.deployment = factories.make_deployment(tenant=self.tenant, flows=[flow])
        self.down = False
        self.outages = 0
        self.down_url = f"http://127.0.0.1:{closed_port()}/sandbox/api"
        self.creds: dict[str, Tracked] = {}
        self.pending: list[SignIn] = []
        self.used_answers: list[str] = []
        self.user = ""
        self.token = ""
        self.allow_multiple = True
        self.tokens_of_user: list[str] = []
        self._new_user()

    def _apps(self) -> dict[str, App]:
        """The sandbox's API-key and OAuth2 apps, and a copy of each that this tenant owns, whose
        API can be taken down without touching the catalog (or another example)."""
        apps = self.world.catalog
        chosen = {SANDBOX_API_KEY: apps[SANDBOX_API_KEY], SANDBOX_OAUTH: apps[SANDBOX_OAUTH]}
        for slug, original in (
            (FLAKY_KEY, apps[SANDBOX_API_KEY]),
            (FLAKY_OAUTH, apps[SANDBOX_OAUTH]),
        ):
            copy = App.objects.get(pk=original.pk)
            copy.pk = None
            copy._state.adding = True
            copy.tenant = self.tenant
            copy.slug = slug
            copy.name = f"Flaky {original.name}"
            copy.save()
            chosen[slug] = copy
        for slug in OAUTH_APPS:
            oauth_client_set(
                tenant=self.tenant,
                app=chosen[slug],
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
            )
        return chosen

    # --- surfaces ---

    def _new_user(self) -> None:
        self.user = f"user-{next(self.world.serial)}"
        self.tokens_of_user = []
        self._open_session(allow_multiple=True)

    def _open_session(self, *, allow_multiple: bool) -> None:
        response = self.api.post(
            "/api/v1/sessions",
            {
                "end_user": {"id": self.user, "email": f"{self.user}@example.com"},
                "deployment_id": str(self.deployment.pk),
                "allow_multiple": allow_multiple,
            },
        )
        assert response.status_code == 201, response.content
        self.token = response.json()["token"]
        self.allow_multiple = allow_multiple
        self.tokens_of_user.append(self.token)

    def _modal(self, path: str, data: dict | None = None, *, token: str | None = None):
        token = token or self.token
        url = f"/connect/{token}/{path}"
        if data is None:
            return self.client.get(url, **hx(token))
        return self.client.post(url, data, **hx(token))

    def _key(self, email: str) -> str:
        return sandbox_api_key_create(account=self.world.accounts[email], name="outbox")[1]

    def _listed(self) -> dict[str, str]:
        listed: dict[str, str] = {}
        cursor = None
        while True:
            params = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
            response = self.api.get("/api/v1/credentials", data=params)
            assert response.status_code == 200, response.content
            body = response.json()
            for item in body["data"]:
                assert item["id"] not in listed, f"{item['id']} listed twice"
                listed[item["id"]] = item["status"]
            cursor = body["next_cursor"]
            if not cursor:
                return listed

    def _outbox(self) -> list[tuple[str, dict]]:
        return [(type_, data) for type_, data, _ in self._outbox_rows()]

    def _outbox_rows(self) -> list[tuple[str, dict, Any]]:
        return list(
            Event.objects.filter(tenant=self.tenant, type__startswith="credential.")
            .order_by("created_at", "pk")
            .values_list("type", "data", "created_at")
        )

    @contextmanager
    def _nothing_connected(self) -> Iterator[None]:
        """What fails at entry leaves no credential and no event that names one."""
        before = len(self._outbox())
        yield
        new = self._outbox()[before:]
        naming = [type_ for type_, data in new if data.get("credential_id")]
        assert not naming, f"an attempt that failed at entry emitted {naming}"

    def _is_down(self, app: str) -> bool:
        return self.down and app in FLAKY_APPS

    def _holder(self, app: str, identity: str) -> str | None:
        return next(
            (pk for pk, c in self.creds.items() if c.app == app and c.identity == identity), None
        )

    def _connected(self, app: str, identity: str, credential_id: str) -> None:
        """The account is connected as ``credential_id``: the one holding it, or a new one."""
        holder = self._holder(app, identity)
        assert credential_id == (holder or credential_id), (
            f"{identity} again on {app} connected {credential_id}, not {holder}"
        )
        assert holder is not None or credential_id not in self.creds
        self.creds[credential_id] = Tracked(app=app, identity=identity)

    def _may_add(self, app: str) -> bool:
        return self.allow_multiple or not any(c.app == app for c in self.creds.values())

    def _pick(self, data, apps: Iterable[str] = (*KEY_APPS, *OAUTH_APPS)) -> str | None:
        # In the order they were connected: ids are random, and a draw must pick the same
        # credential when Hypothesis replays an example.
        candidates = [pk for pk, c in self.creds.items() if c.app in apps]
        return data.draw(st.sampled_from(candidates)) if candidates else None

    # --- the contract, after every step ---

    @invariant()
    def the_outbox_replays_to_what_the_api_lists(self) -> None:
        listed = self._listed()
        rows = self._outbox_rows()
        problems = outbox_violations([(type_, data) for type_, data, _ in rows], listed)
        assert not problems, "\n".join(problems)
        last_at: dict[str, Any] = {}
        for type_, data, created_at in rows:
            credential_id = data.get("credential_id")
            if credential_id:
                # Equal times would leave a tenant unable to tell the order of two changes.
                assert last_at.get(credential_id) != created_at, f"{type_} ties with the last"
                last_at[credential_id] = created_at
        expected = {pk: c.status for pk, c in self.creds.items()}
        assert listed == expected, f"the API lists {listed}, the steps taken should give {expected}"

    @initialize(
        key_account=st.sampled_from(ACCOUNTS),
        oauth_account=st.sampled_from(ACCOUNTS),
        through_api=st.booleans(),
    )
    def start_with_two_connected_accounts(self, key_account, oauth_account, through_api):
        """Most rules act on an account: every example starts with an API-key one and an
        OAuth2 one."""
        if through_api:
            self.connect_a_key_through_the_api(app=SANDBOX_API_KEY, account=key_account, label="")
        else:
            self.connect_a_key_in_the_modal(app=SANDBOX_API_KEY, account=key_account, label="")
        self._answer(self._start(SANDBOX_OAUTH, None), account=oauth_account, allow=True)
        assert len(self.creds) == 2

    # --- API keys ---

    @rule(
        app=st.sampled_from(KEY_APPS),
        account=st.sampled_from(ACCOUNTS),
        label=st.sampled_from(LABELS[:4]),
    )
    def connect_a_key_in_the_modal(self, app, account, label):
        may_add, down = self._may_add(app), self._is_down(app)
        if not may_add or down:
            with self._nothing_connected():
                response = self._modal(
                    f"apps/{app}/accounts/", {"api_key": self._key(account), "portal_label": label}
                )
            assert response.status_code == 422, response.status_code
            return
        response = self._modal(
            f"apps/{app}/accounts/", {"api_key": self._key(account), "portal_label": label}
        )
        assert response.status_code == 200, response.content.decode()[:2000]
        event = page_events(response)[0]
        assert event["event"] == "did-add-authorization"
        assert event["data"]["alreadyExists"] == (self._holder(app, account) is not None)
        self._connected(app, account, event["data"]["authorizationId"])

    @rule(
        app=st.sampled_from(KEY_APPS),
        account=st.sampled_from(ACCOUNTS),
        label=st.sampled_from(LABELS[:4]),
    )
    def connect_a_key_through_the_api(self, app, account, label):
        body = {
            "user": self.user,
            "app": app,
            "fields": {"api_key": self._key(account)},
            "label": label,
        }
        if self._is_down(app):
            with self._nothing_connected():
                response = self.api.post("/api/v1/credentials", body)
            assert response.status_code == 503, response.content
            return
        response = self.api.post("/api/v1/credentials", body)
        already = self._holder(app, account) is not None
        assert response.status_code == (200 if already else 201), response.content
        assert response.json()["already_existed"] is already
        self._connected(app, account, response.json()["id"])

    @rule(app=st.sampled_from(KEY_APPS), through_api=st.booleans())
    def a_wrong_key_connects_nothing(self, app, through_api):
        with self._nothing_connected():
            if through_api:
                response = self.api.post(
                    "/api/v1/credentials",
                    {"user": self.user, "app": app, "fields": {"api_key": WRONG_KEY}},
                )
                expected = 503 if self._is_down(app) else 422
            else:
                response = self._modal(f"apps/{app}/accounts/", {"api_key": WRONG_KEY})
                expected = 422
        assert response.status_code == expected, response.content.decode()[:2000]

    @precondition(lambda self: any(c.app in KEY_APPS for c in self.creds.values()))
    @rule(data=st.data(), account=st.sampled_from(ACCOUNTS), through_api=st.booleans())
    def reconnect_a_key(self, data, account, through_api):
        credential_id = self._pick(data, KEY_APPS)
        tracked = self.creds[credential_id]
        fields = {"api_key": self._key(account)}
        refused = self._is_down(tracked.app) or account != tracked.identity
        with self._nothing_connected() if refused else nullcontext():
            if through_api:
                response = self.api.post(
                    f"/api/v1/credentials/{credential_id}/reconnect", {"fields": fields}
                )
            else:
                response = self._modal(f"accounts/{credential_id}/reconnect/", fields)
        if refused:
            expected = 503 if through_api and self._is_down(tracked.app) else 422
            assert response.status_code == expected, response.content.decode()[:2000]
            return
        assert response.status_code == 200, response.content.decode()[:2000]
        tracked.status, tracked.key_revoked = Credential.Status.ACTIVE, False

    @precondition(
        lambda self: any(c.app in KEY_APPS and not c.key_revoked for c in self.creds.values())
    )
    @rule(data=st.data(), check_now=st.booleans(), through_api=st.booleans())
    def the_sandbox_revokes_the_keys_of_an_account(self, data, check_now, through_api):
        """The person revokes their keys at the provider; checking the account finds out."""
        credential_id = self._pick(data, KEY_APPS)
        account = self.creds[credential_id].identity
        for key in SandboxApiKey.objects.filter(
            account=self.world.accounts[account], revoked_at__isnull=True
        ):
            sandbox_api_key_revoke(api_key=key)
        for tracked in self.creds.values():
            if tracked.app in KEY_APPS and tracked.identity == account:
                tracked.key_revoked = True
        if check_now:
            self._check(credential_id, through_api=through_api)

    @precondition(lambda self: self.outages < MAX_OUTAGES)
    @rule()
    def the_provider_goes_down_or_comes_back(self):
        self._set_down(not self.down)

    def _set_down(self, down: bool) -> None:
        self.down = down
        self.outages += down
        for slug in FLAKY_APPS:
            app = self.apps[slug]
            app.api_base_url = self.down_url if self.down else self.world.base_url + "/sandbox/api"
            app.save(update_fields=["api_base_url", "updated_at"])

    # --- OAuth sign-ins ---

    @precondition(lambda self: len(self.pending) < MAX_PENDING_SIGN_INS)
    @rule(app=st.sampled_from(OAUTH_APPS), reconnect=st.booleans(), data=st.data())
    def start_a_sign_in(self, app, reconnect, data):
        self._start(app, self._pick(data, (app,)) if reconnect else None)

    def _start(self, app: str, target: str | None) -> SignIn | None:
        body = {"credential": target} if target else {}
        if target is None and not self._may_add(app):
            with self._nothing_connected():
                response = self._modal(f"apps/{app}/oauth/", body)
            assert response.status_code == 422, response.status_code
            return None
        response = self._modal(f"apps/{app}/oauth/", body)
        assert response.status_code == 200, response.content.decode()[:2000]
        opened = json.loads(response["HX-Trigger"])["portal-oauth-open"]
        sign_in = SignIn(opened["attempt"], opened["url"], app, self.token, target)
        self.pending.append(sign_in)
        return sign_in

    @rule(
        app=st.sampled_from(OAUTH_APPS),
        reconnect=st.booleans(),
        data=st.data(),
        account=st.sampled_from(ACCOUNTS),
        allow=st.booleans(),
    )
    def sign_in_in_one_go(self, app, reconnect, data, account, allow):
        sign_in = self._start(app, self._pick(data, (app,)) if reconnect else None)
        if sign_in is not None:
            self._answer(sign_in, account=account, allow=allow)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), account=st.sampled_from(ACCOUNTS), allow=st.booleans())
    def answer_a_sign_in(self, data, account, allow):
        self._answer(data.draw(st.sampled_from(self.pending)), account=account, allow=allow)

    @rule(
        app=st.sampled_from(OAUTH_APPS),
        reconnect=st.booleans(),
        meanwhile=st.sampled_from(MEANWHILE),
        data=st.data(),
        account=st.sampled_from(ACCOUNTS),
        allow=st.booleans(),
    )
    def something_happens_while_the_sign_in_window_is_open(
        self, app, reconnect, meanwhile, data, account, allow
    ):
        target = self._pick(data, (app,)) if reconnect else None
        sign_in = self._start(app, target)
        if sign_in is None:
            return
        if meanwhile == "the account is disconnected":
            victim = target or self._pick(data)
            if victim is not None:
                self._disconnect(victim, through_api=data.draw(st.booleans()))
        elif meanwhile == "the user is deleted":
            self._delete_user()
        elif meanwhile == "the provider goes down or comes back":
            self._set_down(not self.down)
        else:
            other = self._start(app, None)
            if other is not None:
                self._answer(other, account=account, allow=True)
        self.the_outbox_replays_to_what_the_api_lists()
        self._answer(sign_in, account=account, allow=allow)

    def _answer(self, sign_in: SignIn, *, account: str, allow: bool) -> None:
        self.pending.remove(sign_in)
        answer = self.world.browser.answer(sign_in.url, email=account, allow=allow)
        self.used_answers.append(answer)
        target = self.creds.get(sign_in.reconnect) if sign_in.reconnect else None
        connects = (
            allow
            and not sign_in.session_gone
            and not self._is_down(sign_in.app)
            and (sign_in.reconnect is None or (target is not None and target.identity == account))
        )
        path, query = path_and_query(answer)
        assert path == "/connect/oauth/callback/"
        with nullcontext() if connects else self._nothing_connected():
            response = self.client.get(path, query)
        assert response.status_code == (400 if sign_in.session_gone else 200), response.status_code
        if sign_in.session_gone:
            return
        status = self._modal(f"oauth/{sign_in.attempt_id}/", token=sign_in.token)
        assert status.status_code == 286, status.status_code
        event = page_events(status)[0]
        if not connects:
            assert event["event"] == "did-fail-authorization-verification", event
            named = sign_in.reconnect if target is not None else None
            assert event["data"]["authorizationId"] == named, event
            return
        assert event["event"] == "did-add-authorization", event
        credential_id = event["data"]["authorizationId"]
        if sign_in.reconnect is not None:
            assert credential_id == sign_in.reconnect
            target.status = Credential.Status.ACTIVE
        else:
            assert event["data"]["alreadyExists"] == (
                self._holder(sign_in.app, account) is not None
            )
            self._connected(sign_in.app, account, credential_id)

    @precondition(lambda self: self.pending)
    @rule(
        data=st.data(),
        reason=st.sampled_from(["closed", "cancelled"]),
        late_answer=st.sampled_from((*ACCOUNTS, None)),
    )
    def abandon_a_sign_in(self, data, reason, late_answer):
        self._abandon(data.draw(st.sampled_from(self.pending)), reason, late_answer)

    @rule(
        app=st.sampled_from(OAUTH_APPS),
        reconnect=st.booleans(),
        data=st.data(),
        reason=st.sampled_from(["closed", "cancelled"]),
        late_answer=st.sampled_from((*ACCOUNTS, None)),
    )
    def start_a_sign_in_then_abandon_it(self, app, reconnect, data, reason, late_answer):
        sign_in = self._start(app, self._pick(data, (app,)) if reconnect else None)
        if sign_in is not None:
            self._abandon(sign_in, reason, late_answer)

    def _abandon(self, sign_in: SignIn, reason: str, late_answer: str | None) -> None:
        """Cancel, or close the window; an answer the provider sends late connects nothing."""
        self.pending.remove(sign_in)
        answer = (
            self.world.browser.answer(sign_in.url, email=late_answer, allow=True)
            if late_answer
            else None
        )
        with self._nothing_connected():
            response = self.client.post(
                f"/connect/{sign_in.token}/oauth/{sign_in.attempt_id}/cancel/",
                {"reason": reason},
                **hx(sign_in.token),
            )
            if answer is not None:
                late = self.client.get(*path_and_query(answer))
                assert late.status_code == 400, late.status_code
                self.used_answers.append(answer)
        if sign_in.session_gone:
            # The modal's page is open but its session ended: htmx is told to reload it.
            assert response.status_code == 204, response.status_code
            assert response["HX-Refresh"] == "true"
        else:
            assert response.status_code == 286, response.status_code
            assert page_events(response)[0]["data"]["reason"] == reason

    @precondition(lambda self: self.used_answers)
    @rule(data=st.data())
    def replay_an_answer(self, data):
        """A provider's answer delivered again (a reload of the callback page, an attacker)."""
        answer = self.used_answers.pop(data.draw(st.integers(0, len(self.used_answers) - 1)))
        with self._nothing_connected():
            response = self.client.get(*path_and_query(answer))
        assert response.status_code == 400, response.status_code

    # --- managing accounts ---

    @precondition(lambda self: self.creds)
    @rule(data=st.data(), label=st.sampled_from(LABELS))
    def rename_an_account(self, data, label):
        credential_id = self._pick(data)
        response = self._modal(f"accounts/{credential_id}/rename/", {"label": label})
        assert response.status_code == (422 if len(label) > 120 else 200), response.status_code

    @precondition(lambda self: self.creds)
    @rule(data=st.data(), through_api=st.booleans())
    def check_an_account_again(self, data, through_api):
        self._check(self._pick(data), through_api=through_api)

    def _check(self, credential_id: str, *, through_api: bool) -> None:
        tracked = self.creds[credential_id]
        if through_api:
            response = self.api.post(f"/api/v1/credentials/{credential_id}/verify")
        else:
            response = self._modal(f"accounts/{credential_id}/retry/", {})
        assert response.status_code == 200, response.content.decode()[:2000]
        if self._is_down(tracked.app):
            result = "unavailable"
        elif tracked.key_revoked:
            result, tracked.status = "rejected", Credential.Status.INVALID
        else:
            result, tracked.status = "verified", Credential.Status.ACTIVE
        if through_api:
            assert response.json()["result"] == result, response.json()

    @precondition(lambda self: self.creds)
    @rule(data=st.data(), through_api=st.booleans())
    def disconnect_an_account(self, data, through_api):
        self._disconnect(self._pick(data), through_api=through_api)

    def _disconnect(self, credential_id: str, *, through_api: bool) -> None:
        if through_api:
            response = self.api.delete(f"/api/v1/credentials/{credential_id}")
            assert response.status_code == 204, response.content
        else:
            response = self._modal(f"accounts/{credential_id}/disconnect/", {})
            assert response.status_code == 200, response.status_code
            assert page_events(response)[0]["data"]["authorizationId"] == credential_id
        del self.creds[credential_id]

    @precondition(lambda self: self.creds or self.pending)
    @rule()
    def delete_the_user_and_go_on_with_a_new_one(self):
        self._delete_user()

    def _delete_user(self) -> None:
        response = self.api.delete(f"/api/v1/users/{self.user}")
        assert response.status_code == 204, response.content
        self.creds.clear()
        for sign_in in self.pending:
            if sign_in.token in self.tokens_of_user:
                sign_in.session_gone = True
        gone = self.client.get(f"/connect/{self.token}/")
        assert gone.status_code in (403, 404), gone.status_code
        self._new_user()

    @precondition(lambda self: len(self.tokens_of_user) < MAX_SESSIONS_PER_USER)
    @rule(allow_multiple=st.booleans())
    def open_another_session(self, allow_multiple):
        self._open_session(allow_multiple=allow_multiple)

    def teardown(self) -> None:
        note(f"tenant {self.tenant.pk}: {len(self._outbox())} credential events")


@pytest.mark.django_db(transaction=True)  # the sandbox under live_server reads what we write
def test_the_outbox_replays_to_the_credentials_the_api_lists_after_every_step(
    live_server, settings
):
    settings.PORTAL_BASE_URL = live_server.url  # the OAuth callback the sandbox sends back to
    sandbox_application_ensure(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[live_server.url + "/connect/oauth/callback/"],
    )
    world = World(
        base_url=live_server.url,
        browser=Browser(live_server.url),
        accounts={account.email: account for account in sandbox_seed()},
        catalog=sandbox_catalog_apps_ensure(base_url=live_server.url),
    )

    run_state_machine_as_test(
        lambda: OutboxContract(world),
        settings=hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )

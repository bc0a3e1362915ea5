"""Reads for the domain: connect sessions, apps, credentials, flows, installations. Every read
is tenant-scoped."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from uuid import UUID

from django.contrib.postgres.aggregates import JSONBAgg
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import JSONArray, Lower
from django.utils import timezone

from accounts.models import AuditLogEntry, EndUser, Tenant
from accounts.selectors import audit_actor_names
from core.prepared import PreparedRead
from core.redact import redact
from core.tokens import hash_token
from core.validators import is_uuid
from integrations.models import (
    App,
    ConnectSession,
    Credential,
    Deployment,
    Event,
    Flow,
    FlowVersion,
    Installation,
    InstallationCredential,
    OAuthAttempt,
    TenantOAuthClient,
    WebhookDelivery,
    Workflow,
    WorkflowRun,
)


class SessionProblem(Enum):
    """Why a session cannot open the modal; each has a message for the end user."""

    MISSING = "This page needs a connect session, and none was given."
    UNKNOWN = "This link is not a valid connect session. It may have been altered."
    EXPIRED = "This connect session has expired."
    REVOKED = "This connect session has been closed."
    SPENT = "This link has already been used."


class SessionUnusable(Exception):
    def __init__(self, problem: SessionProblem, session: ConnectSession | None = None):
        super().__init__(problem.value)
        self.problem = problem
        # A spent link's session: opening it again is still worth recording.
        self.session = session


# After a single-use link is spent, the page that spent it keeps working this long (to show
# the outcome and the account being checked); opening the link again shows that it was used.
SPENT_SESSION_GRACE = timedelta(minutes=15)


def _session_by_token_hash(token_hash: str) -> QuerySet[ConnectSession]:
    allowlist = ConnectSession.apps.through.objects.filter(connectsession_id=OuterRef("pk"))
    return (
        ConnectSession.objects.select_related("tenant", "end_user", "deployment")
        .annotate(has_app_allowlist=Exists(allowlist))
        .filter(token_hash=token_hash)
    )


# Every modal request starts with it: compiled once (core/prepared.py), one indexed query.
_session_lookup = PreparedRead(
    _session_by_token_hash, token_hash=ConnectSession._meta.get_field("token_hash")
)


def _session_with_accounts_by_token_hash(token_hash: str) -> QuerySet[ConnectSession]:
    # The end user's accounts as one JSON array of [app id, id, status, label, identity],
    # oldest first: the list page needs them with the session, and one round trip (and one
    # statement for PostgreSQL to plan) is cheaper than two.
    accounts = (
        Credential.objects.filter(
            tenant_id=OuterRef("tenant_id"), end_user_id=OuterRef("end_user_id")
        )
        .order_by()
        .values("end_user_id")
        .annotate(
            rows=JSONBAgg(
                JSONArray("app_id", "id", "status", "label", "identity"),
                order_by=("created_at", "id"),
            )
        )
        .values("rows")
    )
    return _session_by_token_hash(token_hash).annotate(listed_accounts=Subquery(accounts))


# The list page's lookup (PostgreSQL only: JSONB_AGG), compiled once like the plain one.
_session_with_accounts_lookup = PreparedRead(
    _session_with_accounts_by_token_hash,
    token_hash=ConnectSession._meta.get_field("token_hash"),
)


@dataclass(frozen=True)
class ListedAccount:
    """What the app list shows of an account (its compact line), read with the session."""

    app_id: int
    id: str
    status: str
    label: str
    identity: str


def connect_session_for_token(
    *, token: str | None, from_page: bool = False, with_accounts: bool = False
) -> ConnectSession:
    """The usable session for ``token``, or SessionUnusable saying why not.

    ``from_page``: the request comes from a modal page already open (it carries the session
    header), which may finish its work on a link it has just spent.

    ``with_accounts``: on PostgreSQL, read the end user's accounts in the same query, as
    ``session.listed_accounts`` (a tuple of ``ListedAccount``, oldest first); elsewhere the
    attribute is not set and ``credentials_by_app_for_session`` reads them.
    """
    if not token:
        raise SessionUnusable(SessionProblem.MISSING)
    if len(token) > 100:
        raise SessionUnusable(SessionProblem.UNKNOWN)
    with_accounts = with_accounts and connection.vendor == "postgresql"
    lookup = _session_with_accounts_lookup if with_accounts else _session_lookup
    found = lookup.run(token_hash=hash_token(token))
    session = found[0] if found else None
    if session is None:
        raise SessionUnusable(SessionProblem.UNKNOWN)
    if with_accounts:
        session.listed_accounts = tuple(
            ListedAccount(*row) for row in session.listed_accounts or ()
        )
    if session.revoked_at is not None:
        raise SessionUnusable(SessionProblem.REVOKED)
    now = timezone.now()
    if session.expires_at <= now:
        raise SessionUnusable(SessionProblem.EXPIRED)
    if session.spent_at is not None and (
        not from_page or now - session.spent_at > SPENT_SESSION_GRACE
    ):
        raise SessionUnusable(SessionProblem.SPENT, session)
    return session


def credential_get(*, tenant: Tenant, credential_id) -> Credential | None:
    """One of the tenant's credentials, or None (another tenant's is None too)."""
    return (
        Credential.objects.select_related("app", "end_user", "tenant")
        .filter(tenant=tenant, pk=credential_id)
        .first()
    )


def _credential_for_app(
    *, credential_id, tenant_id, app_tenant_id, shadow_tenant_id, app_slug, shadow_slug
) -> QuerySet[Credential]:
    # Each value once in the SQL (core/prepared.py puts it back in its place): the caller
    # passes the tenant three times and the slug twice.
    own_app = App.objects.filter(tenant_id=shadow_tenant_id, slug=shadow_slug, is_enabled=True)
    return (
        Credential.objects.select_related("app", "end_user")
        # The icon (up to 100 KB) is never needed to call the app's API.
        .defer("app__icon_file")
        .filter(
            Q(app__tenant__isnull=True) | Q(app__tenant_id=app_tenant_id),
            tenant_id=tenant_id,
            pk=credential_id,
            app__slug=app_slug,
            app__is_enabled=True,
        )
        .annotate(shadowed=Exists(own_app.exclude(pk=OuterRef("app_id"))))
        .order_by()  # one row by its key: no sort
    )


# The proxy's and the workflow steps' hot read: compiled once (core/prepared.py).
_credential_for_app_read = PreparedRead(
    _credential_for_app,
    credential_id=Credential._meta.pk,
    tenant_id=Credential._meta.get_field("tenant"),
    app_tenant_id=App._meta.get_field("tenant"),
    shadow_tenant_id=App._meta.get_field("tenant"),
    app_slug=App._meta.get_field("slug"),
    shadow_slug=App._meta.get_field("slug"),
)


def credential_get_for_app(*, tenant: Tenant, app_slug: str, credential_id) -> Credential | None:
    """The tenant's credential when it is an account of the app the tenant means by ``app_slug``.

    One query (the proxy's hot path, compiled once): the credential with its app and end user,
    and whether a tenant's own app shadows the catalog app of the same slug (then the slug means
    the tenant's app, as in ``app_get_for_tenant``). None when any of it does not hold.
    """
    try:
        credential_id = UUID(str(credential_id))
    except ValueError:
        return None
    found = _credential_for_app_read.run(
        credential_id=credential_id,
        tenant_id=tenant.pk,
        app_tenant_id=tenant.pk,
        shadow_tenant_id=tenant.pk,
        app_slug=app_slug,
        shadow_slug=app_slug,
    )
    credential = found[0] if found else None
    if credential is None or credential.shadowed:
        return None
    credential.tenant = tenant
    return credential


def credential_list(
    *,
    tenant: Tenant,
    end_user: EndUser | None = None,
    app_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Credential]:
    """The tenant's credentials, filtered, oldest first (a stable order for cursor pages)."""
    credentials = Credential.objects.select_related("app", "end_user").filter(tenant=tenant)
    if end_user is not None:
        credentials = credentials.filter(end_user=end_user)
    if app_id is not None:
        credentials = credentials.filter(app_id=app_id)
    if status is not None:
        credentials = credentials.filter(status=status)
    return credentials.order_by("created_at", "pk")


class AppProblem(Enum):
    """Why an app cannot be offered to a tenant's end users, as the tenant reads it."""

    DISABLED = "app_disabled"
    NO_OAUTH_CLIENT = "oauth_client_missing"


APP_PROBLEM_SENTENCES = {
    AppProblem.DISABLED: "{app} is disabled: end users will not see it.",
    AppProblem.NO_OAUTH_CLIENT: "{app} has no OAuth client: end users will not see it. "
    "Add the client id and secret under OAuth clients.",
}


@dataclass(frozen=True)
class Connectability:
    """Whether end users can connect an app for a tenant, and if not why (for the tenant)."""

    app: App
    problem: AppProblem | None = None

    @property
    def connectable(self) -> bool:
        return self.problem is None

    @property
    def code(self) -> str | None:
        return self.problem.value if self.problem else None

    @property
    def reason(self) -> str | None:
        if self.problem is None:
            return None
        return APP_PROBLEM_SENTENCES[self.problem].format(app=self.app.name)


def _oauth_client_ready(tenant_id) -> QuerySet[TenantOAuthClient]:
    """The tenant's OAuth clients that can start a sign-in (a client secret is stored)."""
    return TenantOAuthClient.objects.filter(tenant_id=tenant_id, secret_ciphertext__isnull=False)


def app_connectable_q(*, tenant: Tenant) -> Q:
    """The one rule for connectability, as a filter on App: enabled, and an OAuth2 app only
    with the tenant's OAuth client. ``app_connectability`` states the same rule per app."""
    has_client = Exists(_oauth_client_ready(tenant.pk).filter(app_id=OuterRef("pk")))
    return Q(is_enabled=True) & (~Q(auth_type=App.AuthType.OAUTH2) | has_client)


def app_connectability(*, tenant: Tenant, apps: list[App]) -> dict[int, Connectability]:
    """Each app's connectability for the tenant, by app id, in one query."""
    oauth_ids = [app.pk for app in apps if app.is_oauth2 and app.is_enabled]
    with_client = (
        set(
            _oauth_client_ready(tenant.pk)
            .filter(app_id__in=oauth_ids)
            .values_list("app_id", flat=True)
        )
        if oauth_ids
        else set()
    )
    result = {}
    for app in apps:
        problem = None
        if not app.is_enabled:
            problem = AppProblem.DISABLED
        elif app.is_oauth2 and app.pk not in with_client:
            problem = AppProblem.NO_OAUTH_CLIENT
        result[app.pk] = Connectability(app=app, problem=problem)
    return result


def app_problems_for_flows(*, tenant: Tenant, flows: QuerySet[Flow]) -> list[Connectability]:
    """The apps of ``flows`` that end users will not see, with why, by app name (the admin's
    check on a flow or deployment page). The tenant's own app is left out: it is never offered."""
    apps = list(
        App.objects.filter(pk__in=flows.values("apps"))
        .exclude(pk=tenant.own_app_id or 0)
        .order_by(Lower("name"), "pk")
    )
    found = app_connectability(tenant=tenant, apps=apps)
    return [entry for entry in found.values() if not entry.connectable]


def app_list_used_by_flows(*, tenant: Tenant) -> QuerySet[App]:
    """The apps the tenant's flows use (any status), its own app left out, by name."""
    apps = App.objects.filter(
        Q(tenant__isnull=True) | Q(tenant=tenant),
        pk__in=Flow.objects.filter(tenant=tenant).values("apps"),
    )
    if tenant.own_app_id is not None:
        apps = apps.exclude(pk=tenant.own_app_id)
    return apps.order_by(Lower("name"), "pk")


def app_list_offered(
    *,
    tenant: Tenant,
    deployment: Deployment | None = None,
    allowlist: QuerySet[App] | list[int] | None = None,
) -> QuerySet[App]:
    """The apps a tenant's end users may connect (DESIGN.md's rules), in one query.

    Listed when: not the tenant's own app; connectable (``app_connectable_q``: enabled, and an
    OAuth2 app only with the tenant's OAuth client); used by a published flow inside an active
    deployment of the tenant (inside ``deployment`` when given); on the allowlist when there is one.
    """
    flows = Flow.objects.filter(
        tenant=tenant, status=Flow.Status.PUBLISHED, deployments__is_active=True
    )
    if deployment is not None:
        flows = flows.filter(deployments=deployment)
    apps = App.objects.filter(
        Q(tenant__isnull=True) | Q(tenant=tenant),
        app_connectable_q(tenant=tenant),
        pk__in=flows.values("apps"),
    )
    if tenant.own_app_id is not None:
        apps = apps.exclude(pk=tenant.own_app_id)
    if allowlist is not None:
        apps = apps.filter(pk__in=allowlist)
    return apps.order_by(Lower("name"), "pk")


def app_list_for_session(*, session: ConnectSession) -> QuerySet[App]:
    """The apps a connect session offers: its deployment and its allowlist narrow the tenant's.

    An empty allowlist means no restriction; both cases are answered by the same single query.
    """
    allowlist = ConnectSession.apps.through.objects.filter(connectsession_id=session.pk)
    return app_list_offered(tenant=session.tenant, deployment=session.deployment).filter(
        ~Exists(allowlist) | Q(pk__in=allowlist.values("app_id"))
    )


@dataclass
class OfferedApp:
    app: App
    credentials: list[Credential] = field(default_factory=list)


LISTED_APP_FIELDS = (
    "id",
    "tenant_id",
    "slug",
    "name",
    "description",
    "icon",
    "icon_digest",
    "icon_file_type",
    "auth_type",
)
# What the list shows of an account (its compact line); the rest would only cost parsing.
LISTED_CREDENTIAL_FIELDS = (
    "id",
    "tenant_id",
    "end_user_id",
    "app_id",
    "status",
    "label",
    "identity",
)


def app_catalog_for_session(*, session: ConnectSession) -> list[App]:
    """The session's apps, by name, with only the fields the list shows (one query; the apps'
    JSON definitions and icon files stay behind)."""
    return list(app_list_for_session(session=session).only(*LISTED_APP_FIELDS))


def app_search_matches(query: str, *, name: str, slug: str, description: str) -> bool:
    """Whether the modal's search box ``query`` finds an app by its name, slug or description
    (case-insensitive)."""
    needle = query.casefold()
    return (
        needle in name.casefold() or needle in slug.casefold() or needle in description.casefold()
    )


def _end_user_credentials(tenant_id, end_user_id) -> QuerySet[Credential]:
    return (
        Credential.objects.filter(tenant_id=tenant_id, end_user_id=end_user_id)
        .only(*LISTED_CREDENTIAL_FIELDS)
        .order_by("created_at", "pk")
    )


_end_user_credentials_read = PreparedRead(
    _end_user_credentials,
    tenant_id=Credential._meta.get_field("tenant"),
    end_user_id=Credential._meta.get_field("end_user"),
)


def credentials_by_app_for_session(*, session: ConnectSession) -> dict[int, list[Credential]]:
    """The end user's accounts, oldest first, by app id: one query on an indexed column,
    never cached (an account's state changes outside any request)."""
    by_app: dict[int, list[Credential]] = defaultdict(list)
    credentials = _end_user_credentials_read.run(
        tenant_id=session.tenant_id, end_user_id=session.end_user_id
    )
    for credential in credentials:
        by_app[credential.app_id].append(credential)
    return by_app


def offered_apps_with_credentials(*, session: ConnectSession, query: str = "") -> list[OfferedApp]:
    """The session's apps (those matching ``query``, when given), each with the end user's
    accounts for it, in a fixed query count."""
    query = " ".join(query.split())[:100]
    apps = [
        app
        for app in app_catalog_for_session(session=session)
        if not query
        or app_search_matches(query, name=app.name, slug=app.slug, description=app.description)
    ]
    by_app = credentials_by_app_for_session(session=session)
    offered = []
    for app in apps:
        for credential in by_app.get(app.pk, []):
            credential.app = app
        offered.append(OfferedApp(app=app, credentials=by_app.get(app.pk, [])))
    return offered


# Reads for the server API (api/): each is scoped to one tenant.


def app_get_for_tenant(*, tenant: Tenant, slug: str) -> App | None:
    """The enabled app a tenant means by ``slug``: its own app first, else the catalog's."""
    apps = App.objects.filter(Q(tenant__isnull=True) | Q(tenant=tenant), slug=slug, is_enabled=True)
    # A tenant's own app may share a catalog slug; the tenant's wins.
    return apps.order_by(F("tenant_id").asc(nulls_last=True)).first()


def app_names(*, tenant_id, slugs: list[str]) -> list[str]:
    """The names of the apps with these slugs as the tenant sees them (for a sentence: catalog
    apps and the tenant's own, never another tenant's)."""
    if not slugs:
        return []
    apps = App.objects.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id), slug__in=slugs)
    return sorted(set(apps.values_list("name", flat=True)))


def flow_get(*, tenant: Tenant, flow_id) -> Flow | None:
    return Flow.objects.filter(tenant=tenant, pk=flow_id).first()


def flow_list(*, tenant: Tenant) -> QuerySet[Flow]:
    """The tenant's flows with their apps, workflows and newest version number
    (``latest_version``), in three queries whatever their number."""
    return (
        Flow.objects.filter(tenant=tenant)
        .annotate(latest_version=Max("versions__number"))
        .prefetch_related(
            Prefetch("apps", queryset=App.objects.only("pk", "slug")),
            Prefetch("workflows", queryset=Workflow.objects.order_by("key")),
        )
    )


def flow_version_installation_counts(*, version: FlowVersion) -> tuple[int, int]:
    """How many installations run ``version``, and how many wait to move to it."""
    counts = Installation.objects.filter(flow_id=version.flow_id).aggregate(
        on=Count("pk", filter=Q(flow_version=version)),
        waiting=Count("pk", filter=Q(pending_version=version)),
    )
    return counts["on"], counts["waiting"]


def installation_list_for_end_user(
    *, end_user: EndUser, flow: Flow | None = None, credential: Credential | None = None
) -> QuerySet[Installation]:
    """The end user's installations (of ``flow``, using ``credential``), oldest first."""
    installations = Installation.objects.filter(
        tenant_id=end_user.tenant_id, end_user=end_user
    ).select_related("flow", "end_user", "flow_version", "pending_version")
    if flow is not None:
        installations = installations.filter(flow=flow)
    if credential is not None:
        installations = installations.filter(credential_links__credential=credential)
    return installations.prefetch_related("credential_links__app", "enabled_workflows").order_by(
        "created_at", "pk"
    )


@dataclass
class EndUserIntegration:
    """One app as the API's ``GET /users/{id}`` shows it (see ``end_user_integrations``)."""

    app: App
    enabled: bool = False
    credential: Credential | None = None
    credentials: list[Credential] = field(default_factory=list)
    installations: list[Installation] = field(default_factory=list)


def end_user_integrations(*, end_user: EndUser) -> dict[str, EndUserIntegration]:
    """The end user's apps, by slug, each with its accounts and the installations using it.

    An app is listed when the user holds a credential for it or has installed a flow that uses
    it. ``enabled``: one of those installations is enabled. ``credential``: the account the
    installations use for the app (an enabled installation's first, the most recently changed
    first), else the user's newest active credential for it, else None. Four queries.
    """
    credentials = list(
        Credential.objects.filter(tenant_id=end_user.tenant_id, end_user=end_user)
        .select_related("app", "end_user")
        .order_by("created_at", "pk")
    )
    installations = list(
        Installation.objects.filter(tenant_id=end_user.tenant_id, end_user=end_user)
        .select_related("flow")
        .prefetch_related("flow__apps", "credential_links")
        .order_by("-enabled", "-updated_at", "pk")
    )
    by_app: dict[int, EndUserIntegration] = {}
    for credential in credentials:
        entry = by_app.setdefault(credential.app_id, EndUserIntegration(app=credential.app))
        entry.credentials.append(credential)
    for installation in installations:
        for app in installation.flow.apps.all():
            entry = by_app.setdefault(app.pk, EndUserIntegration(app=app))
            entry.installations.append(installation)
    credentials_by_id = {credential.pk: credential for credential in credentials}
    for app_id, entry in by_app.items():
        entry.enabled = any(installation.enabled for installation in entry.installations)
        in_use = [
            link.credential_id
            for installation in entry.installations
            for link in installation.credential_links.all()
            if link.app_id == app_id and link.credential_id in credentials_by_id
        ]
        active = [c for c in entry.credentials if c.status == Credential.Status.ACTIVE]
        if in_use:
            entry.credential = credentials_by_id[in_use[0]]
        elif active:
            entry.credential = active[-1]
    return {entry.app.slug: entry for entry in sorted(by_app.values(), key=lambda e: e.app.slug)}


# A verification retried for longer than this (a provider down for a day) is not traced back.
MERGE_LOOKBACK = timedelta(days=1)


def app_icon_file_get(*, app_id: int, digest: str) -> App | None:
    """An app's uploaded icon by its id and digest (the URL names both; neither alone finds it)."""
    if not digest:
        return None
    return App.objects.filter(pk=app_id, icon_digest=digest, icon_file__isnull=False).first()


def app_get_for_session(*, session: ConnectSession, slug: str) -> App | None:
    """One of the session's apps by slug; a tenant's own app wins over a catalog namesake."""
    return (
        app_list_for_session(session=session)
        .filter(slug=slug[:64])
        .order_by(F("tenant_id").desc(nulls_last=True))
        .first()
    )


def offered_app_with_credentials(*, session: ConnectSession, app: App) -> OfferedApp:
    credentials = list(
        Credential.objects.filter(
            tenant_id=session.tenant_id, end_user_id=session.end_user_id, app=app
        ).order_by("created_at")
    )
    for credential in credentials:
        credential.app = app
    return OfferedApp(app=app, credentials=credentials)


def credential_get_for_session(*, session: ConnectSession, credential_id) -> Credential | None:
    """The end user's account, if its app is one the session offers; otherwise None (a 404)."""
    return (
        Credential.objects.select_related("app", "tenant", "end_user")
        .filter(
            pk=credential_id,
            tenant_id=session.tenant_id,
            end_user_id=session.end_user_id,
            app__in=app_list_for_session(session=session),
        )
        .first()
    )


def flow_list_for_session(*, session: ConnectSession) -> QuerySet[Flow]:
    """The flows the session offers: published, in an active deployment (its own, if named)."""
    flows = Flow.objects.filter(
        tenant_id=session.tenant_id, status=Flow.Status.PUBLISHED, deployments__is_active=True
    )
    if session.deployment_id is not None:
        flows = flows.filter(deployments=session.deployment_id)
    return flows.distinct()


def flow_get_for_session(*, session: ConnectSession, flow_id, app: App | None = None):
    flows = flow_list_for_session(session=session)
    if app is not None:
        flows = flows.filter(apps=app)
    try:
        return flows.filter(pk=flow_id).first()
    except (ValueError, TypeError, ValidationError):
        return None


@dataclass
class FlowForAccount:
    """A flow that uses an account's app, with the end user's installation of it for that
    account (or None when it is not installed for it)."""

    flow: Flow
    installation: Installation | None
    workflows: list[Workflow]
    enabled_workflow_keys: set[str]


def flows_for_credential(
    *, session: ConnectSession, credential: Credential
) -> list[FlowForAccount]:
    """The session's flows that use the account's app, each with its installation for the
    account, in a fixed number of queries."""
    flows = list(
        flow_list_for_session(session=session)
        .filter(apps=credential.app_id)
        .order_by("name", "pk")
        .prefetch_related(Prefetch("workflows", queryset=Workflow.objects.order_by("name")))
    )
    links = (
        InstallationCredential.objects.filter(
            credential=credential, installation__flow__in=[flow.pk for flow in flows]
        )
        .select_related("installation")
        .prefetch_related("installation__enabled_workflows")
    )
    by_flow: dict = {}
    for link in links:
        by_flow.setdefault(link.installation.flow_id, link.installation)
    result = []
    for flow in flows:
        installation = by_flow.get(flow.pk)
        if installation is not None:
            installation.flow = flow
        keys = {wf.key for wf in installation.enabled_workflows.all()} if installation else set()
        result.append(
            FlowForAccount(
                flow=flow,
                installation=installation,
                workflows=list(flow.workflows.all()),
                enabled_workflow_keys=keys,
            )
        )
    return result


def oauth_attempt_get_for_session(*, session: ConnectSession, attempt_id) -> OAuthAttempt | None:
    try:
        return (
            OAuthAttempt.objects.select_related(
                "app", "tenant", "credential", "session__end_user", "session__tenant"
            )
            .filter(pk=attempt_id, session=session)
            .first()
        )
    except (ValueError, TypeError, ValidationError):
        return None


def workflow_run_list(
    *,
    tenant: Tenant,
    end_user: EndUser | None = None,
    workflow: Workflow | None = None,
    credential_id=None,
    status: str | None = None,
) -> QuerySet[WorkflowRun]:
    """The tenant's workflow runs, filtered, oldest first (a stable order for cursor pages)."""
    runs = WorkflowRun.objects.select_related("workflow", "end_user").filter(tenant=tenant)
    if end_user is not None:
        runs = runs.filter(end_user=end_user)
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    if credential_id is not None:
        runs = runs.filter(credentials_used__credential_id=credential_id)
    if status is not None:
        runs = runs.filter(status=status)
    return runs.prefetch_related("credentials_used").order_by("created_at", "pk")


def workflow_run_get(*, tenant: Tenant, run_id) -> WorkflowRun | None:
    try:
        return (
            WorkflowRun.objects.select_related("workflow", "end_user")
            .prefetch_related("credentials_used", "steps")
            .filter(tenant=tenant, pk=run_id)
            .first()
        )
    except ValidationError:
        return None


# The support view: what happened to one end user's accounts (the admin's end-user page).


@dataclass(frozen=True)
class EventSubject:
    """Whom and what an outbox event is about, as staff read it."""

    end_user: EndUser | None
    user_external_id: str
    app_name: str
    credential_id: str
    credential_name: str
    credential_exists: bool


def event_subjects(*, events: list[Event]) -> dict[UUID, EventSubject]:
    """The end user, app and credential each event names, in three queries however many events
    there are. Events keep what they said when sent (a deleted credential's name stays)."""
    tenant_ids = {event.tenant_id for event in events}
    external_ids = {str(event.data.get("user_id")) for event in events if event.data.get("user_id")}
    credential_ids = [
        event.data["credential_id"] for event in events if is_uuid(event.data.get("credential_id"))
    ]
    slugs = {event.data.get("app") for event in events if event.data.get("app")}
    end_users = (
        {
            (end_user.tenant_id, end_user.external_id): end_user
            for end_user in EndUser.objects.filter(
                tenant_id__in=tenant_ids, external_id__in=external_ids
            )
        }
        if external_ids
        else {}
    )
    credentials = (
        {
            str(credential.pk): credential
            for credential in Credential.objects.filter(
                tenant_id__in=tenant_ids, pk__in=credential_ids
            ).select_related("app")
        }
        if credential_ids
        else {}
    )
    app_names = {}
    if slugs:
        apps = App.objects.filter(
            Q(tenant__isnull=True) | Q(tenant_id__in=tenant_ids), slug__in=slugs
        ).order_by(F("tenant_id").asc(nulls_first=True))
        for app in apps:
            app_names[(app.tenant_id, app.slug)] = app.name
    subjects = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        external_id = str(data.get("user_id") or "")
        credential_id = str(data.get("credential_id") or "")
        credential = credentials.get(credential_id)
        slug = data.get("app") or ""
        app_name = (
            credential.app.name
            if credential
            else app_names.get((event.tenant_id, slug)) or app_names.get((None, slug)) or slug
        )
        subjects[event.pk] = EventSubject(
            end_user=end_users.get((event.tenant_id, external_id)),
            user_external_id=external_id,
            app_name=app_name,
            credential_id=credential_id,
            credential_name=(
                credential.display_name if credential else str(data.get("credential_name") or "")
            ),
            credential_exists=credential is not None,
        )
    return subjects


@dataclass(frozen=True)
class AuditSubject:
    """Whom and what an audit entry is about: its credential, or the installation it names."""

    end_user: EndUser | None
    app_name: str
    credential: Credential | None
    installation: Installation | None
    flow: Flow | None = None


def audit_entry_subjects(*, entries: list[AuditLogEntry]) -> dict[int, AuditSubject]:
    """The end user, app, credential, installation or flow of each entry, in two queries
    beyond the entries' own (read with ``select_related("credential__end_user",
    "credential__app")``). A flow's entry names it as "<id> v<number>"."""
    tenant_ids = {entry.tenant_id for entry in entries}
    installation_ids = [
        entry.target for entry in entries if entry.credential_id is None and is_uuid(entry.target)
    ]
    flow_ids = {
        entry.pk: entry.target.split(" ")[0]
        for entry in entries
        if entry.action.startswith("flow.") and is_uuid(entry.target.split(" ")[0])
    }
    flows = (
        {
            str(flow.pk): flow
            for flow in Flow.objects.filter(tenant_id__in=tenant_ids, pk__in=flow_ids.values())
        }
        if flow_ids
        else {}
    )
    installations = (
        {
            str(installation.pk): installation
            for installation in Installation.objects.filter(
                tenant_id__in={entry.tenant_id for entry in entries}, pk__in=installation_ids
            ).select_related("flow", "end_user")
        }
        if installation_ids
        else {}
    )
    subjects = {}
    for entry in entries:
        credential = entry.credential
        installation = installations.get(entry.target) if credential is None else None
        end_user = (
            credential.end_user if credential else installation.end_user if installation else None
        )
        subjects[entry.pk] = AuditSubject(
            end_user=end_user,
            app_name=credential.app.name if credential else "",
            credential=credential,
            installation=installation,
            flow=flows.get(flow_ids.get(entry.pk, "")),
        )
    return subjects


class TimelineSource(Enum):
    CHANGE = "change"
    SECRET_USE = "secret use"
    EVENT = "event"


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an end user's accounts: a change or a use of a secret (from
    the audit log, with who did it) or an event sent to the tenant (with its deliveries)."""

    at: datetime
    source: TimelineSource
    what: str
    failed: bool
    actor: str
    app_name: str
    credential_id: str
    credential_name: str
    credential_exists: bool
    audit_entry: AuditLogEntry | None = None
    event: Event | None = None
    deliveries: tuple[WebhookDelivery, ...] = ()


@dataclass(frozen=True)
class Timeline:
    entries: list[TimelineEntry]
    has_more: bool
    credentials: list[Credential]


TIMELINE_MAX = 1000


def end_user_timeline(
    *,
    end_user: EndUser,
    limit: int = 50,
    credential_id: str | None = None,
    secret_uses: bool = False,
) -> Timeline:
    """What happened to ``end_user``'s accounts, newest first: the audit log's changes (and,
    with ``secret_uses``, each opening of a secret) and the events sent to the tenant with
    their webhook deliveries. The newest ``limit`` entries (at most TIMELINE_MAX); a fixed
    number of queries however many rows there are. Only ``end_user``'s tenant's rows.
    """
    limit = max(1, min(limit, TIMELINE_MAX))
    tenant_id = end_user.tenant_id
    credentials = list(
        Credential.objects.filter(tenant_id=tenant_id, end_user=end_user)
        .select_related("app")
        .order_by("app__name", "created_at")
    )
    flow_names = {
        str(pk): name
        for pk, name in Installation.objects.filter(
            tenant_id=tenant_id, end_user=end_user
        ).values_list("pk", "flow__name")
    }
    installation_ids = list(flow_names)
    events = Event.objects.filter(tenant_id=tenant_id, data__user_id=end_user.external_id)
    # A deleted credential's entries keep its id in ``target``; its events still name it.
    deleted_credential_ids = events.filter(data__has_key="credential_id").values(
        cid=KT("data__credential_id")
    )
    audit = AuditLogEntry.objects.filter(tenant_id=tenant_id).filter(
        Q(credential__end_user=end_user)
        | Q(credential__isnull=True, target__in=deleted_credential_ids)
        | Q(target__in=installation_ids)
    )
    if credential_id:
        audit = audit.filter(Q(credential_id=credential_id) | Q(target=credential_id))
        events = events.filter(data__credential_id=credential_id)
    if not secret_uses:
        audit = audit.exclude(action__startswith="credential.use.")
    audit_entries = list(
        audit.select_related("credential__app").order_by("-created_at", "-pk")[: limit + 1]
    )
    event_rows = list(events.order_by("-created_at", "-pk")[: limit + 1])
    subjects = event_subjects(events=event_rows)
    deliveries = defaultdict(list)
    for delivery in (
        WebhookDelivery.objects.filter(event__in=[event.pk for event in event_rows])
        .select_related("endpoint")
        .order_by("created_at")
    ):
        deliveries[delivery.event_id].append(delivery)
    actors = audit_actor_names(entries=audit_entries, tenant_ids=[tenant_id])
    deleted_names = {
        subject.credential_id: (subject.app_name, subject.credential_name)
        for subject in subjects.values()
        if subject.credential_id
    }

    entries = [
        _audit_timeline_entry(entry, actors, deleted_names, flow_names) for entry in audit_entries
    ] + [
        TimelineEntry(
            at=event.created_at,
            source=TimelineSource.EVENT,
            what=f"Event {event.type} sent to the tenant",
            failed=False,
            actor="-",
            app_name=subjects[event.pk].app_name,
            credential_id=subjects[event.pk].credential_id,
            credential_name=subjects[event.pk].credential_name,
            credential_exists=subjects[event.pk].credential_exists,
            event=event,
            deliveries=tuple(deliveries[event.pk]),
        )
        for event in event_rows
    ]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return Timeline(entries=entries[:limit], has_more=len(entries) > limit, credentials=credentials)


def _audit_timeline_entry(
    entry: AuditLogEntry,
    actors: dict,
    deleted_names: dict[str, tuple[str, str]],
    flow_names: dict[str, str],
) -> TimelineEntry:
    credential = entry.credential
    if credential is not None:
        app_name, name, exists = credential.app.name, credential.display_name, True
        credential_id = str(credential.pk)
    elif entry.target in deleted_names:
        (app_name, name), exists = deleted_names[entry.target], False
        credential_id = entry.target
    else:
        app_name, name, exists, credential_id = "", "", False, ""
    use = entry.action.startswith("credential.use.")
    what = audit_entry_summary(entry)
    if entry.target in flow_names:
        what += f" ({flow_names[entry.target]})"
    return TimelineEntry(
        at=entry.created_at,
        source=TimelineSource.SECRET_USE if use else TimelineSource.CHANGE,
        what=what,
        failed=entry.outcome == AuditLogEntry.Outcome.FAILURE,
        actor=actors[(entry.actor_type, entry.actor)],
        app_name=app_name,
        credential_id=credential_id,
        credential_name=name,
        credential_exists=exists,
        audit_entry=entry,
    )


_ACTION_SUMMARIES = {
    "credential.create": "Connected",
    "credential.reconnect": "Reconnected",
    "credential.rename": "Renamed",
    "credential.expire": "Expired",
    "credential.revoke": "Revoked",
    "credential.delete": "Deleted",
    "installation.create": "Flow installed",
    "installation.update": "Installation settings changed",
    "installation.enable": "Installation enabled",
    "installation.disable": "Installation disabled",
    "installation.delete": "Flow uninstalled",
    "installation.credential_replace": "Installation's account replaced",
    "installation.version_update": "Installation moved to a new flow version",
    "installation.needs_update": "Installation needs the user's action for a new version",
}


def audit_entry_summary(entry: AuditLogEntry) -> str:
    """What an audit entry records, in a sentence staff can read (never a secret: provider
    texts are redacted before they are stored, and once more here)."""
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    failed = entry.outcome == AuditLogEntry.Outcome.FAILURE
    action = entry.action
    if action == "credential.verify":
        result = detail.get("result")
        code = detail.get("status_code")
        suffix = f" (HTTP {code})" if code else ""
        if result == "rejected":
            text = f"Verification failed: the provider refused the account{suffix}"
        elif result == "unavailable":
            text = f"Verification could not reach the provider{suffix}; status kept"
        elif result == "skipped":
            text = "Verification skipped"
        else:
            text = "Verified" if not failed else f"Verification failed{suffix}"
    elif action == "credential.refresh":
        if failed:
            code = detail.get("code") or "error"
            transient = " (temporary; will retry)" if detail.get("transient") else ""
            text = f"Token refresh failed: {code}{transient}"
        else:
            text = "Token refreshed"
    elif action.startswith("credential.use."):
        purpose = action.removeprefix("credential.use.")
        text = f"Secret used for {purpose}" + (" (failed)" if failed else "")
    else:
        text = _ACTION_SUMMARIES.get(action, action)
        if failed:
            text += " (failed)"
    if reason := detail.get("reason"):
        text += f": {reason}"
    return redact(text)

"""The beat sweeps: each queues only what is due, claims it in batches, and leases it."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.conf import conf
from integrations.models import Credential, WebhookDelivery
from integrations.services.events import event_emit
from integrations.services.sweeps import (
    CREDENTIALS_PER_JOB,
    credentials_pending_stuck,
    credentials_refresh_due,
    credentials_reverify_due,
    reverify_claim_take,
    reverify_lease_extend,
    sweep_batch_claim,
    sweep_batch_claim_sql,
    sweep_pending_credentials,
    sweep_refresh_due,
    sweep_reverify_due,
    sweep_webhook_deliveries,
    webhook_deliveries_due,
)
from integrations.tasks import deliver_webhook, refresh_credentials, verify_credentials
from tests import factories

MINUTE = timedelta(minutes=1)
# The column each sweep leases, by the index it reads.
LEASES = {
    "credential_refresh_due": "refresh_leased_until",
    "credential_reverify_due": "verification_leased_until",
    "credential_pending": "verification_leased_until",
    "delivery_due": "leased_until",
}
LEASE_NEARLY_OVER = timedelta(seconds=conf.REFRESH_LEASE_SECONDS - 1)


@pytest.fixture
def oauth_app(db):
    return factories.make_oauth_app()


def _queued(callbacks, task) -> list[tuple]:
    """The arguments of the ``task`` jobs a sweep queued on commit (each callback sends a task
    by name: ``job_send(name, *args)``), one tuple per row: a batch job's list of ids is one
    tuple per id, each with the batch's other arguments."""
    queued = []
    for callback in callbacks:
        if callback.args[0] != task.name:
            continue
        first, *rest = callback.args[1:]
        if isinstance(first, list):
            queued += [(row, *rest) for row in first]
        else:
            queued.append((first, *rest))
    return sorted(queued)


def _oauth_credential(end_user, app, *, refresh_at, status="active"):
    return factories.make_credential(
        end_user=end_user,
        app=app,
        secret={"access_token": "a", "refresh_token": "r"},
        status=status,
        expires_at=(refresh_at + timedelta(minutes=15)) if refresh_at else None,
        refresh_at=refresh_at,
    )


def test_the_refresh_sweep_queues_only_active_credentials_that_are_due_and_leases_them(
    end_user, oauth_app, django_capture_on_commit_callbacks
):
    now = timezone.now()
    due = _oauth_credential(end_user, oauth_app, refresh_at=now - MINUTE)
    _oauth_credential(end_user, oauth_app, refresh_at=now + MINUTE)
    _oauth_credential(end_user, oauth_app, refresh_at=now - MINUTE, status="expired")
    _oauth_credential(end_user, oauth_app, refresh_at=None)

    with django_capture_on_commit_callbacks() as callbacks:
        result = sweep_refresh_due(now=now)

    assert result.queued == 1
    assert _queued(callbacks, refresh_credentials) == [(str(due.pk),)]
    due.refresh_from_db()
    assert due.refresh_leased_until == now + timedelta(seconds=conf.REFRESH_LEASE_SECONDS)
    assert due.refresh_at == now - MINUTE  # the refresh itself moves it


def test_a_leased_row_is_left_alone_until_its_lease_ends_and_is_then_queued_again(
    end_user, oauth_app, django_capture_on_commit_callbacks
):
    now = timezone.now()
    due = _oauth_credential(end_user, oauth_app, refresh_at=now - MINUTE)
    sweep_refresh_due(now=now)

    with django_capture_on_commit_callbacks() as during_lease:
        assert sweep_refresh_due(now=now + LEASE_NEARLY_OVER).queued == 0
    lease_over = now + timedelta(seconds=conf.REFRESH_LEASE_SECONDS + 1)
    with django_capture_on_commit_callbacks() as after_lease:
        assert sweep_refresh_due(now=lease_over).queued == 1

    assert during_lease == []
    assert _queued(after_lease, refresh_credentials) == [(str(due.pk),)]


def test_the_reverify_sweep_queues_only_active_credentials_due_for_re_verification(
    end_user, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app()
    now = timezone.now()
    due = factories.make_credential(end_user=end_user, app=app, next_verification_at=now - MINUTE)
    factories.make_credential(end_user=end_user, app=app, next_verification_at=now + MINUTE)
    factories.make_credential(
        end_user=end_user, app=app, next_verification_at=now - MINUTE, status="invalid"
    )
    factories.make_credential(end_user=end_user, app=app, next_verification_at=None)

    with django_capture_on_commit_callbacks() as callbacks:
        sweep_reverify_due(now=now)

    lease = now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)
    # Each job carries the lease it was queued under: it knows when a later sweep re-queued it.
    assert _queued(callbacks, verify_credentials) == [(str(due.pk), lease.isoformat())]
    due.refresh_from_db()
    assert due.verification_leased_until == lease
    assert due.next_verification_at == now - MINUTE  # the verification itself moves it


def test_the_pending_sweep_queues_only_credentials_pending_longer_than_the_threshold(
    end_user, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app()
    now = timezone.now()
    stuck = factories.make_credential(end_user=end_user, app=app, status="pending")
    fresh = factories.make_credential(end_user=end_user, app=app, status="pending")
    factories.make_credential(end_user=end_user, app=app, status="active")
    Credential.objects.filter(pk=stuck.pk).update(updated_at=now - timedelta(minutes=30))
    Credential.objects.filter(pk=fresh.pk).update(
        updated_at=now - timedelta(seconds=conf.PENDING_AFTER_SECONDS - 5)
    )
    Credential.objects.exclude(pk__in=[stuck.pk, fresh.pk]).update(
        updated_at=now - timedelta(hours=2)
    )

    with django_capture_on_commit_callbacks() as callbacks:
        sweep_pending_credentials(now=now)

    assert _queued(callbacks, verify_credentials) == [(str(stuck.pk),)]
    stuck.refresh_from_db()
    # Leased: the next sweep waits the threshold again.
    assert stuck.verification_leased_until == now + timedelta(seconds=conf.PENDING_AFTER_SECONDS)
    threshold = timedelta(seconds=conf.PENDING_AFTER_SECONDS)
    assert stuck not in credentials_pending_stuck(now=now + threshold - timedelta(seconds=1))
    assert stuck in credentials_pending_stuck(now=now + threshold)


def test_the_delivery_sweep_queues_due_pending_deliveries_with_their_attempt_count(
    tenant, django_capture_on_commit_callbacks
):
    from integrations.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url="http://127.0.0.1:9/hook")
    with transaction.atomic():
        events = [event_emit(tenant=tenant, type="credential.verified", data={}) for _ in "abc"]
    due, later, done = (WebhookDelivery.objects.get(event=event) for event in events)
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=due.pk).update(attempt_count=2, next_attempt_at=now)
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=now + MINUTE)
    WebhookDelivery.objects.filter(pk=done.pk).update(status="succeeded")
    assert endpoint.deliveries.count() == 3

    with django_capture_on_commit_callbacks() as callbacks:
        sweep_webhook_deliveries(now=now)

    assert _queued(callbacks, deliver_webhook) == [(str(due.pk), 2)]
    due.refresh_from_db()
    assert due.leased_until == now + timedelta(seconds=conf.WEBHOOK_LEASE_SECONDS)
    assert due not in webhook_deliveries_due(now=due.leased_until - timedelta(seconds=1))
    assert due in webhook_deliveries_due(now=due.leased_until)


def test_a_sweep_claims_in_batches_and_leaves_the_rest_for_its_next_run(
    end_user, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_SWEEP_BATCH_SIZE = 2
    settings.PORTAL_SWEEP_MAX_BATCHES = 2
    app = factories.make_api_key_app()
    now = timezone.now()
    credentials = [
        factories.make_credential(
            end_user=end_user, app=app, next_verification_at=now - timedelta(minutes=n + 1)
        )
        for n in range(5)
    ]

    with django_capture_on_commit_callbacks() as first_run:
        first = sweep_reverify_due(now=now)
    with django_capture_on_commit_callbacks() as second_run:
        second = sweep_reverify_due(now=now)

    assert (first.queued, first.batches) == (4, 2)
    assert (second.queued, second.batches) == (1, 1)
    # The longest overdue go first.
    assert [args[0] for args in _queued(second_run, verify_credentials)] == [str(credentials[0].pk)]
    assert len(_queued(first_run, verify_credentials)) == 4


def test_a_sweep_queues_one_job_per_batch_of_credentials_each_under_the_lease(
    end_user, settings, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app()
    now = timezone.now()
    due = [
        factories.make_credential(end_user=end_user, app=app, next_verification_at=now - MINUTE)
        for _ in range(CREDENTIALS_PER_JOB + 1)
    ]

    with django_capture_on_commit_callbacks() as callbacks:
        assert sweep_reverify_due(now=now).queued == len(due)

    lease = (now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)).isoformat()
    jobs = sorted((callback.args[1:] for callback in callbacks), key=lambda args: -len(args[0]))
    assert [(len(ids), claim) for ids, claim in jobs] == [
        (CREDENTIALS_PER_JOB, lease),
        (1, lease),
    ]
    assert sorted(id for ids, _ in jobs for id in ids) == sorted(str(c.pk) for c in due)


def test_each_batch_of_a_sweep_starts_where_the_one_before_it_ended(
    end_user, settings, django_capture_on_commit_callbacks
):
    """The rows a batch claimed stay due (leased) until their jobs are done: the next batch
    reads the due index from the latest of them on, rather than passing over them again."""
    settings.PORTAL_SWEEP_BATCH_SIZE = 2
    settings.PORTAL_SWEEP_MAX_BATCHES = 3
    app = factories.make_api_key_app()
    now = timezone.now()
    credentials = [
        factories.make_credential(
            end_user=end_user, app=app, next_verification_at=now - timedelta(minutes=10 - n)
        )
        for n in range(5)
    ]

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks() as callbacks,
    ):
        result = sweep_reverify_due(now=now)

    claims = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert (result.queued, result.batches) == (5, 3)
    assert {args[0] for args in _queued(callbacks, verify_credentials)} == {
        str(credential.pk) for credential in credentials
    }
    assert '"next_verification_at" >=' not in claims[0]
    # From the second claimed row's due time on (the latest of the first batch), and so on.
    for claim, latest in zip(claims[1:], (credentials[1], credentials[3]), strict=True):
        assert '"next_verification_at" >=' in claim
        assert latest.next_verification_at.isoformat(sep=" ")[:19] in claim


def test_a_batch_is_claimed_and_leased_in_one_statement(
    end_user, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_SWEEP_BATCH_SIZE = 10
    app = factories.make_api_key_app()
    now = timezone.now()
    for n in range(3):
        factories.make_credential(
            end_user=end_user, app=app, next_verification_at=now - timedelta(minutes=n + 1)
        )

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks():
        assert sweep_reverify_due(now=now).queued == 3

    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1, statements
    assert statements[0].startswith('UPDATE "integrations_credential"')
    assert "FOR UPDATE SKIP LOCKED" in statements[0] or connection.vendor != "postgresql"


@pytest.mark.postgres
def test_a_claim_skips_rows_another_transaction_holds(transactional_db, end_user):
    app = factories.make_api_key_app()
    now = timezone.now()
    held, free = (
        factories.make_credential(end_user=end_user, app=app, next_verification_at=now - MINUTE)
        for _ in range(2)
    )
    lease = {"verification_leased_until": now + MINUTE}
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
    ) as other:
        # A verification job (or another sweep) holds ``held`` under its row lock meanwhile.
        other.execute("SELECT 1 FROM integrations_credential WHERE id = %s FOR UPDATE", [held.pk])
        with transaction.atomic():
            claimed = sweep_batch_claim(
                due=credentials_reverify_due(now=now), fields=("pk",), lease=lease, limit=10
            )
        other.rollback()

    assert claimed == [(free.pk,)]
    held.refresh_from_db()
    free.refresh_from_db()
    assert held.verification_leased_until is None  # not leased: the next sweep takes it
    assert free.verification_leased_until == now + MINUTE


@pytest.mark.postgres
def test_each_sweep_selects_what_is_due_through_its_partial_index(db):
    now = timezone.now()
    selections = {
        "credential_refresh_due": credentials_refresh_due(now=now),
        "credential_reverify_due": credentials_reverify_due(now=now),
        "credential_pending": credentials_pending_stuck(now=now),
        "delivery_due": webhook_deliveries_due(now=now),
    }
    with connection.cursor() as cursor:
        # A few rows make a sequential scan cheapest; the benchmark shows the choice at scale.
        # Here we check each query can use its index, i.e. it repeats the index's condition.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for index, queryset in selections.items():
            plan = queryset.select_for_update(skip_locked=True).values_list("pk")[:500].explain()
            assert index in plan and "Seq Scan" not in plan, plan
            # The claim's subquery is the same selection: it reads the same index.
            lease = {LEASES[index]: now}
            sql, params = sweep_batch_claim_sql(
                due=queryset, fields=("pk",), lease=lease, limit=500
            )
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert index in plan and "Seq Scan" not in plan, plan


def _updates(table: str) -> tuple[int, int]:
    """Rows this transaction updated in ``table`` so far: all of them, and those rewritten in
    place on their page without a new entry in any index (HOT)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


@pytest.mark.postgres
def test_a_claim_leases_each_credential_in_place_without_a_new_index_entry(
    end_user, oauth_app, settings, django_capture_on_commit_callbacks
):
    """What keeps a claim of 500 rows cheap at a million credentials: a credential has about
    ten indexes, and a lease that moved an indexed column gave each claimed row a new entry
    in every one of them."""
    settings.PORTAL_SWEEP_SPREAD_SECONDS = 0
    key_app = factories.make_api_key_app()
    now = timezone.now()
    for _ in range(3):
        _oauth_credential(end_user, oauth_app, refresh_at=now - MINUTE)
        factories.make_credential(end_user=end_user, app=key_app, next_verification_at=now - MINUTE)
        factories.make_credential(end_user=end_user, app=key_app, status="pending")
    Credential.objects.filter(status="pending").update(updated_at=now - timedelta(hours=1))
    before = _updates("integrations_credential")

    with django_capture_on_commit_callbacks() as callbacks:
        queued = [
            sweep(now=now).queued
            for sweep in (sweep_refresh_due, sweep_reverify_due, sweep_pending_credentials)
        ]
    job = next(args for args in _queued(callbacks, verify_credentials) if len(args) == 2)
    assert reverify_claim_take(credential_id=job[0], claim=job[1]) is not None
    after = _updates("integrations_credential")

    assert queued == [3, 3, 3]
    updated, in_place = (a - b for a, b in zip(after, before, strict=True))
    assert updated == 10  # nine claimed rows, then one job took its lease
    # An update is in place only while its page has room for the new row version, which
    # depends on what earlier tests left on the page; an update of an indexed column never is
    # (test_no_index_reads_a_lease_column holds the cause).
    assert in_place > 0


@pytest.mark.postgres
def test_a_claim_leases_each_webhook_delivery_in_place_without_a_new_index_entry(
    tenant, django_capture_on_commit_callbacks
):
    from integrations.models import WebhookEndpoint

    WebhookEndpoint.objects.create(tenant=tenant, url="http://127.0.0.1:9/hook")
    with transaction.atomic():
        for _ in range(3):
            event_emit(tenant=tenant, type="credential.verified", data={})
    now = timezone.now()
    WebhookDelivery.objects.update(next_attempt_at=now - MINUTE)
    before = _updates("integrations_webhookdelivery")

    with django_capture_on_commit_callbacks():
        assert sweep_webhook_deliveries(now=now).queued == 3

    after = _updates("integrations_webhookdelivery")
    updated, in_place = (a - b for a, b in zip(after, before, strict=True))
    assert updated == 3 and in_place > 0  # as for credentials: room on the page permitting


@pytest.mark.parametrize(
    ("table", "due_index"),
    [
        ("integrations_credential", "credential_reverify_due"),
        ("integrations_webhookdelivery", "delivery_due"),
    ],
)
@pytest.mark.postgres
def test_no_index_reads_a_lease_column(db, table, due_index):
    # Not even in an index's condition: PostgreSQL rewrites a row in place only when no
    # indexed column (or column of a partial index's condition) changes.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass",
            [table],
        )
        definitions = dict(cursor.fetchall())
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
        (options,) = cursor.fetchone()

    assert due_index in definitions
    for name, definition in definitions.items():
        assert "leased_until" not in definition, name
    # Room on each page for the leased version of its rows.
    assert "fillfactor=90" in options


def test_the_credential_and_delivery_tables_keep_no_redundant_index(db):
    """Each index is one more entry to write whenever a row gets a new version: an index on a
    column that leads a composite index, or that nothing looks rows up by, is dead weight."""
    with connection.cursor() as cursor:
        indexes = {
            table: [
                info["columns"]
                for info in connection.introspection.get_constraints(cursor, table).values()
                if info["index"] or info["unique"]
            ]
            for table in ("integrations_credential", "integrations_webhookdelivery")
        }

    credential = indexes["integrations_credential"]
    assert ["tenant_id"] not in credential
    assert ["tenant_id", "end_user_id", "app_id"] in credential  # credential_owner
    assert ["tenant_id", "status"] in credential  # credential_tenant_status
    assert ["secret_key_id"] not in credential  # nor its LIKE twin on PostgreSQL
    assert ["event_id"] not in indexes["integrations_webhookdelivery"]
    assert ["event_id", "endpoint_id"] in indexes["integrations_webhookdelivery"]


def test_a_job_whose_credential_was_verified_meanwhile_skips_itself(
    end_user, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app()
    now = timezone.now()
    credential = factories.make_credential(
        end_user=end_user, app=app, next_verification_at=now - MINUTE
    )
    with django_capture_on_commit_callbacks() as callbacks:
        sweep_reverify_due(now=now)
    ((_, claim),) = _queued(callbacks, verify_credentials)
    # Verified by another path (the end user reconnected, say) before the job started.
    Credential.objects.filter(pk=credential.pk).update(next_verification_at=now + timedelta(days=1))

    assert reverify_claim_take(credential_id=credential.pk, claim=claim) is None


def test_a_job_waiting_for_a_retry_keeps_its_credential_out_of_the_due_rows_until_then(
    end_user, django_capture_on_commit_callbacks
):
    app = factories.make_api_key_app()
    now = timezone.now()
    credential = factories.make_credential(
        end_user=end_user, app=app, next_verification_at=now - MINUTE
    )
    with django_capture_on_commit_callbacks() as callbacks:
        sweep_reverify_due(now=now)
    ((_, claim),) = _queued(callbacks, verify_credentials)
    claim = reverify_claim_take(credential_id=credential.pk, claim=claim)

    # The provider is down: the job retries in an hour.
    retry_claim = reverify_lease_extend(credential_id=credential.pk, seconds=3600)
    credential.refresh_from_db()
    lease = timezone.now() + timedelta(hours=1)

    # Not due while the job waits (not even at the head of the due rows, where every sweep
    # would pass over it), and the retried job takes its row back.
    assert credential.next_verification_at == credential.verification_leased_until
    assert credential.next_verification_at >= lease
    assert credential not in credentials_reverify_due(now=lease)
    assert reverify_claim_take(credential_id=credential.pk, claim=retry_claim) is not None
    assert reverify_claim_take(credential_id=credential.pk, claim=claim) is None


def test_every_beat_entry_names_a_registered_task_and_expires_before_its_next_run():
    from portal.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule

    assert {
        "refresh-due-credentials",
        "reverify-due-credentials",
        "verify-stuck-pending-credentials",
        "deliver-due-webhooks",
    } <= set(schedule)
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] <= entry["schedule"], name


def test_rows_whose_work_keeps_failing_go_behind_those_that_fell_due_since(
    end_user, oauth_app, settings, django_capture_on_commit_callbacks
):
    """A tenant's broken OAuth client leaves its tokens due (the refresh fails and does not
    move their due time): claimed again once their lease ends, they move behind the rows that
    fell due meanwhile instead of taking every run's whole budget forever."""
    settings.PORTAL_SWEEP_BATCH_SIZE = 2
    settings.PORTAL_SWEEP_MAX_BATCHES = 1
    start = timezone.now()
    poison = [
        factories.make_credential(
            end_user=end_user, app=oauth_app, refresh_at=start - timedelta(hours=1, minutes=n)
        )
        for n in range(4)
    ]
    with django_capture_on_commit_callbacks():
        sweep_refresh_due(now=start)  # two of them, leased; their jobs fail: nothing moves
    genuine = factories.make_credential(
        end_user=end_user, app=oauth_app, refresh_at=start - timedelta(minutes=1)
    )

    queued = []
    now = start
    for _ in range(4):  # runs after each lease has run out
        now += timedelta(seconds=conf.REFRESH_LEASE_SECONDS + 1)
        with django_capture_on_commit_callbacks() as run:
            sweep_refresh_due(now=now)
        queued.append({args[0] for args in _queued(run, refresh_credentials)})

    # Each failing row is claimed twice at its due time (the first claim cannot tell), then
    # moves behind: the row due since waits for those claims, not forever.
    assert str(genuine.pk) in queued[3]
    # Every failing row was still retried: none is dropped.
    assert {str(c.pk) for c in poison} <= set().union(*queued)
    # A first claim leaves the due time alone; only a claim for the same due time moves it.
    claimed_once = Credential.objects.get(pk=genuine.pk)
    assert claimed_once.refresh_at == start - timedelta(minutes=1)


def test_a_stuck_pending_credential_claimed_again_keeps_its_updated_at(
    end_user, django_capture_on_commit_callbacks
):
    # The stuck-pending sweep's due time is the credential's updated_at, which users read: a
    # claim for the same due time leaves it alone (the other sweeps move theirs behind).
    app = factories.make_api_key_app()
    credential = factories.make_credential(end_user=end_user, app=app, status="pending")
    stuck = timezone.now() - timedelta(hours=1)
    Credential.objects.filter(pk=credential.pk).update(updated_at=stuck)
    now = timezone.now()
    for run in range(2):
        with django_capture_on_commit_callbacks():
            assert sweep_pending_credentials(now=now).queued == 1, run
        now += timedelta(seconds=conf.PENDING_AFTER_SECONDS + 1)

    credential.refresh_from_db()
    assert credential.updated_at == stuck

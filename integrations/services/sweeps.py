"""The periodic sweeps: find what is due, claim it in batches, and queue their jobs.

Each ``*_due`` selector reads only rows that are due through a partial index whose condition it
repeats (``credential_refresh_due``, ``credential_reverify_due``, ``credential_pending``,
``delivery_due``), ordered by the indexed column, so a sweep costs the same whatever the table
size. Each ``sweep_*`` service claims a batch in one statement (``sweep_batch_claim``:
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …``, so two beat
runs never claim the same rows), which leases it, and queues the jobs by id once the claim
commits, spread over a few seconds: one job per webhook delivery, and one job per
CREDENTIALS_PER_JOB credentials (``integrations.tasks.verify_credentials``), which handles each
of them as its own job would, so that a worker's cost per job is paid per batch.

A credential's lease is a column of its own (``refresh_leased_until``,
``verification_leased_until``) that no index reads, and the selectors pass over rows whose
lease has not ended: a claim then rewrites each row in place (a HOT update) instead of adding
500 scattered rows to every index of the table. A webhook delivery's lease works the same way
(``leased_until``). The due time moves only when the work is done or waits for a retry, so
only rows whose job is queued or running are leased while due. In a backlog the first batch
of a run passes over the rows the previous run leased (at most SWEEP_MAX_BATCHES batches'
worth); each later batch starts where the one before it ended.

Leases are short (45 s by default) and renewed by the job while it lives: when it starts
and before each retry. A job lost with a killed worker, or never queued because Redis was
down, renews nothing, so its row is due again a lease later and the next sweep (every 30 s)
queues it: recovery within two minutes by default (``core.conf``: the ``*_LEASE_SECONDS``,
``PENDING_AFTER_SECONDS`` and ``SWEEP_SPREAD_SECONDS`` settings). Re-verification jobs carry
the lease they were queued under and skip themselves when a later sweep re-queued their row,
so a backlog after an outage does not turn into duplicate calls to the providers.
"""

from __future__ import annotations

import functools
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.conf import conf
from core.health import beat_sweep_record
from integrations.models import Credential, WebhookDelivery
from integrations.services.jobs import (
    DELIVER_WEBHOOK,
    REFRESH_CREDENTIALS,
    VERIFY_CREDENTIALS,
    job_send,
)

logger = logging.getLogger(__name__)

# Credentials per verification or refresh job. A batch takes about this many provider round
# trips, one after another; a claim of SWEEP_BATCH_SIZE rows still makes enough jobs to keep
# every thread of a worker busy.
CREDENTIALS_PER_JOB = 20


# Selectors: what is due now. The benchmark times and explains exactly these.


def _not_leased(column: str, now: datetime) -> Q:
    return Q(**{f"{column}__isnull": True}) | Q(**{f"{column}__lte": now})


def credentials_refresh_due(*, now: datetime) -> QuerySet[Credential]:
    """Active OAuth2 credentials whose refresh is scheduled by now (``credential_refresh_due``)
    and not leased."""
    return Credential.objects.filter(
        _not_leased("refresh_leased_until", now),
        status=Credential.Status.ACTIVE,
        refresh_at__isnull=False,
        refresh_at__lte=now,
    ).order_by("refresh_at")


def credentials_reverify_due(*, now: datetime) -> QuerySet[Credential]:
    """Active credentials due for re-verification (``credential_reverify_due``) and not
    leased."""
    return Credential.objects.filter(
        _not_leased("verification_leased_until", now),
        status=Credential.Status.ACTIVE,
        next_verification_at__isnull=False,
        next_verification_at__lte=now,
    ).order_by("next_verification_at")


def credentials_pending_stuck(*, now: datetime) -> QuerySet[Credential]:
    """Credentials pending for longer than PENDING_AFTER_SECONDS (``credential_pending``), and
    not leased: their verification job was never queued (the broker was down) or was lost."""
    cutoff = now - timedelta(seconds=conf.PENDING_AFTER_SECONDS)
    return Credential.objects.filter(
        _not_leased("verification_leased_until", now),
        status=Credential.Status.PENDING,
        updated_at__lte=cutoff,
    ).order_by("updated_at")


def webhook_deliveries_due(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose next attempt is due (``delivery_due``) and not leased."""
    return WebhookDelivery.objects.filter(
        _not_leased("leased_until", now),
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__isnull=False,
        next_attempt_at__lte=now,
    ).order_by("next_attempt_at")


# Services: claim, lease and queue.


@dataclass(frozen=True)
class SweepResult:
    queued: int
    batches: int


def sweep_batch_claim_sql(
    *,
    due: QuerySet,
    fields: tuple[str, ...],
    lease: dict[str, Any],
    limit: int,
    behind: bool = True,
) -> tuple[str, list[Any]]:
    """The claim statement and its parameters (``sweep_batch_claim``; the benchmark explains it).

    The subquery reads the due rows through the selector's partial index, in its order, and
    locks ``limit`` of them, skipping rows another transaction holds; the update leases exactly
    those and returns ``fields`` of each.

    A row claimed again for the same due time (its earlier lease ran out while it stayed due:
    its job failed without moving the due time, crashed, or was lost) also has its due time
    moved to the new lease's end, which puts it behind the rows that fell due since, as a
    first claim's lease never needs to: rows whose work keeps failing cannot hold the head of
    the due index and crowd out everyone else's. Only those rows leave the in-place update.
    ``behind=False`` leaves the due time alone (the stuck-pending sweep's is the credential's
    ``updated_at``, which users read).

    On PostgreSQL the subquery returns where each locked row version is (its ``ctid``), and the
    update goes straight there, rather than looking each row up again by primary key (a third
    of what a claim read). A row that another transaction changed and committed while this
    statement ran is then locked but neither leased nor returned: it stays due, and the next
    sweep takes it.
    """
    connection = connections[due.db]
    quote = connection.ops.quote_name
    meta = due.model._meta
    (name, value), *others = lease.items()
    if others:
        raise ValueError("A lease moves one column.")
    lease_field = meta.get_field(name)
    (order,) = due.query.order_by  # the due time, in the selector's index order
    due_column = quote(meta.get_field(order).column)
    table, column, pk = quote(meta.db_table), quote(lease_field.column), quote(meta.pk.column)
    locked = due.select_for_update(skip_locked=True)
    if connection.vendor == "postgresql":
        row = RawSQL(f"{table}.ctid", ())  # noqa: S611 (the quoted table name of the model)
        select = locked.annotate(_row=row).values_list("_row")[:limit]
        where = "ctid = ANY(ARRAY({}))"
    else:
        select = locked.values_list("pk")[:limit]
        where = f"{pk} IN ({{}})"
    select_sql, select_params = select.query.get_compiler(using=due.db).as_sql()
    returning = ", ".join(
        quote((meta.pk if field == "pk" else meta.get_field(field)).column) for field in fields
    )
    # Names come from the model and are quoted; every value is a parameter.
    lease_value = lease_field.get_db_prep_save(value, connection)
    moves, params = "", [lease_value]
    if behind:
        moves = f", {due_column} = CASE WHEN {column} >= {due_column} THEN %s ELSE {due_column} END"
        params.append(lease_value)
    sql = (
        f"UPDATE {table} SET {column} = %s{moves} "  # noqa: S608
        f"WHERE {where.format(select_sql)} RETURNING {returning}"
    )
    return sql, [*params, *select_params]


def sweep_batch_claim(
    *,
    due: QuerySet,
    fields: tuple[str, ...],
    lease: dict[str, Any],
    limit: int,
    behind: bool = True,
) -> list[tuple[Any, ...]]:
    """Lease up to ``limit`` rows of ``due`` that no other transaction holds, in one statement,
    and return ``fields`` of each (in the caller's transaction: the lease commits with it)."""
    sql, params = sweep_batch_claim_sql(
        due=due, fields=fields, lease=lease, limit=limit, behind=behind
    )
    meta = due.model._meta
    converters = [
        (meta.pk if field == "pk" else meta.get_field(field)).to_python for field in fields
    ]
    with connections[due.db].cursor() as cursor:
        cursor.execute(sql, params)
        return [
            tuple(convert(value) for convert, value in zip(converters, row, strict=True))
            for row in cursor.fetchall()
        ]


def _sweep(
    *,
    due: QuerySet,
    fields: tuple[str, ...],
    lease: dict[str, Any],
    task: str,
    claim: bool = False,
    per_job: int = 1,
    behind: bool = True,
) -> SweepResult:
    """Claim due rows in batches, lease them, and queue their jobs, spread over
    SWEEP_SPREAD_SECONDS: one per row, or with ``per_job`` one per ``per_job`` rows (the job
    gets the list of their ids). With ``claim``, each job also gets the lease it was queued
    under, so that a job that starts after a later sweep re-queued its row knows it is stale."""
    queued = batches = 0
    batch_size = conf.SWEEP_BATCH_SIZE
    (lease_value,) = lease.values()
    extra = (lease_value.isoformat(),) if claim else ()
    (order,) = due.query.order_by  # the due time, which the selector reads in its index's order
    for _ in range(conf.SWEEP_MAX_BATCHES):
        with transaction.atomic():
            claimed = sweep_batch_claim(
                due=due, fields=(*fields, order), lease=lease, limit=batch_size, behind=behind
            )
            rows = [row[:-1] for row in claimed]
            if not rows:
                break
            if per_job > 1:
                jobs = [
                    ([str(row[0]) for row in rows[start : start + per_job]],)
                    for start in range(0, len(rows), per_job)
                ]
            else:
                jobs = [(str(row[0]), *row[1:]) for row in rows]
            for args in jobs:
                transaction.on_commit(
                    functools.partial(job_send, task, *args, *extra, countdown=_spread())
                )
        queued += len(rows)
        batches += 1
        if len(rows) < batch_size:
            break
        # The rows just claimed stay due, leased, until their jobs are done: the next batch
        # starts at the latest of them rather than passing over all of them again. (A row
        # skipped because another transaction held it is left to the next run.)
        due = due.filter(**{f"{order}__gte": max(row[-1] for row in claimed)})
    if queued:
        logger.info("Queued %d row(s) in %d batch(es).", queued, batches)
    beat_sweep_record()
    return SweepResult(queued=queued, batches=batches)


def _spread() -> float:
    # After an outage a sweep finds everything due at once: its jobs start over a few seconds
    # rather than all together against the same providers.
    return round(random.uniform(0, conf.SWEEP_SPREAD_SECONDS), 3)  # noqa: S311


def sweep_refresh_due(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_refresh_due(now=now),
        fields=("pk",),
        lease={"refresh_leased_until": now + timedelta(seconds=conf.REFRESH_LEASE_SECONDS)},
        task=REFRESH_CREDENTIALS,
        per_job=CREDENTIALS_PER_JOB,
    )


def sweep_reverify_due(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_reverify_due(now=now),
        fields=("pk",),
        lease={"verification_leased_until": now + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)},
        task=VERIFY_CREDENTIALS,
        claim=True,
        per_job=CREDENTIALS_PER_JOB,
    )


def sweep_pending_credentials(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=credentials_pending_stuck(now=now),
        fields=("pk",),
        # Due again once it has waited the threshold again, as if it had just become pending.
        lease={"verification_leased_until": now + timedelta(seconds=conf.PENDING_AFTER_SECONDS)},
        task=VERIFY_CREDENTIALS,
        per_job=CREDENTIALS_PER_JOB,
        behind=False,  # its due time is the credential's updated_at
    )


def sweep_webhook_deliveries(*, now: datetime | None = None) -> SweepResult:
    now = now or timezone.now()
    return _sweep(
        due=webhook_deliveries_due(now=now),
        fields=("pk", "attempt_count"),
        lease={"leased_until": now + timedelta(seconds=conf.WEBHOOK_LEASE_SECONDS)},
        task=DELIVER_WEBHOOK,
    )


# Leases held by running jobs. A job renews its row's lease when it starts and when it waits
# for a retry, so the sweep leaves the row alone while the job lives; a job lost with its
# worker renews nothing, and its row is due again one lease after the job last renewed it.
# A job waiting for a retry also moves the row's due time to the end of its lease, so that
# rows whose provider is down for hours do not wait at the head of the due index, where every
# sweep would pass over them.


def reverify_claim_take(*, credential_id: object, claim: str) -> str | None:
    """A re-verification job starts: it holds its row for REVERIFY_LEASE_SECONDS from now, if
    the row still carries the lease the job was queued under. Returns the new lease (the job's
    claim from now on), or None when the job is stale: a later sweep queued the row again (this
    job waited longer than its lease), or the row was verified meanwhile (which moved its due
    time past the lease, or cleared it)."""
    queued_under = parse_datetime(claim)
    lease = timezone.now() + timedelta(seconds=conf.REVERIFY_LEASE_SECONDS)
    taken = Credential.objects.filter(
        pk=credential_id,
        verification_leased_until=queued_under,
        next_verification_at__lte=queued_under,
    ).update(verification_leased_until=lease)
    return lease.isoformat() if taken else None


def reverify_lease_extend(*, credential_id: object, seconds: float) -> str | None:
    """The job retries in ``seconds``: its row stays leased, and is not due, until a lease
    after that."""
    lease = timezone.now() + timedelta(seconds=seconds + conf.REVERIFY_LEASE_SECONDS)
    extended = Credential.objects.filter(
        pk=credential_id, status=Credential.Status.ACTIVE, next_verification_at__isnull=False
    ).update(next_verification_at=lease, verification_leased_until=lease)
    return lease.isoformat() if extended else None


def refresh_lease_extend(*, credential_id: object, seconds: float) -> None:
    """A refresh job retries in ``seconds``: the refresh sweep leaves its row alone until then
    (a duplicate refresh would be harmless, the refresh re-checks under its lock, but useless)."""
    Credential.objects.filter(
        pk=credential_id, status=Credential.Status.ACTIVE, refresh_at__isnull=False
    ).update(refresh_at=timezone.now() + timedelta(seconds=seconds + conf.REFRESH_LEASE_SECONDS))

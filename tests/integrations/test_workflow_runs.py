"""The run history's retention (old runs purged in batches) and recovery (lost jobs queued
again, runs stranded by an ended process marked failed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.conf import conf
from integrations.models import Event, WorkflowRun, WorkflowRunStep
from integrations.services import workflow_runs
from integrations.services.jobs import RUN_WORKFLOW
from integrations.services.workflow_runs import workflow_runs_purge, workflow_runs_recover
from tests import factories

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_runs_older_than_the_retention_are_purged_in_batches_with_their_steps(tenant, settings):
    settings.PORTAL_WORKFLOW_RUN_RETENTION_DAYS = 7
    settings.PORTAL_WORKFLOW_RUN_PURGE_BATCH_SIZE = 2
    app = factories.make_api_key_app(slug="crm")
    flow = factories.make_flow(tenant=tenant, apps=[app])
    workflow = factories.make_workflow(flow=flow, steps=[{"name": "a", "app": "crm", "path": "x"}])
    now = timezone.now()

    def run(age_days):
        made = WorkflowRun.objects.create(
            tenant=tenant,
            workflow=workflow,
            trigger="request",
            status="succeeded",
            created_at=now - timedelta(days=age_days),
        )
        WorkflowRunStep.objects.create(
            run=made, position=0, name="a", app_slug="crm", method="GET", path="x"
        )
        return made

    old = [run(8) for _ in range(5)]
    recent = [run(6), run(0)]

    removed = workflow_runs_purge(now=now)

    assert removed == len(old)
    assert set(WorkflowRun.objects.values_list("pk", flat=True)) == {r.pk for r in recent}
    assert WorkflowRunStep.objects.count() == len(recent)


# Recovery: a lost job is queued again; a run whose process ended midway is marked failed.


@pytest.fixture
def workflow(tenant):
    app = factories.make_api_key_app(slug="crm")
    flow = factories.make_flow(tenant=tenant, apps=[app])
    return factories.make_workflow(flow=flow, steps=[{"name": "a", "app": "crm", "path": "x"}])


def _run(workflow, *, status, created, queued=None, started=None):
    return WorkflowRun.objects.create(
        tenant=workflow.flow.tenant,
        workflow=workflow,
        trigger="url" if queued else "request",
        status=status,
        created_at=created,
        queued_at=queued,
        started_at=started,
    )


def test_recovery_queues_again_only_the_runs_whose_job_is_overdue(
    workflow, django_capture_on_commit_callbacks
):
    now = timezone.now()
    lost = _run(workflow, status="queued", created=now - HOUR, queued=now - HOUR)
    waiting = _run(workflow, status="queued", created=now, queued=now - timedelta(seconds=5))
    done = _run(workflow, status="succeeded", created=now - HOUR, queued=now - HOUR)

    with django_capture_on_commit_callbacks() as callbacks:
        result = workflow_runs_recover(now=now)

    assert (result.requeued, result.failed) == (1, 0)
    assert [c.args for c in callbacks] == [(RUN_WORKFLOW, str(lost.pk))]
    lost.refresh_from_db()
    assert lost.status == "queued" and lost.queued_at == now  # leased until the next lapse
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert waiting.status == "queued" and done.status == "succeeded"

    with django_capture_on_commit_callbacks() as callbacks:
        assert workflow_runs_recover(now=now + timedelta(seconds=5)).requeued == 0
    assert callbacks == []


def test_recovery_fails_runs_stranded_midway_and_says_so_once(workflow):
    now = timezone.now()
    limit = timedelta(seconds=conf.WORKFLOW_RUN_STRANDED_AFTER_SECONDS)
    stranded = _run(
        workflow, status="running", created=now - 2 * limit, started=now - limit - MINUTE
    )
    # A request-triggered run whose web process ended before it started: no job will come.
    orphan = _run(workflow, status="queued", created=now - limit - MINUTE)
    busy = _run(workflow, status="running", created=now - MINUTE, started=now - MINUTE)
    fresh = _run(workflow, status="queued", created=now - MINUTE)

    result = workflow_runs_recover(now=now)
    assert (result.requeued, result.failed) == (0, 2)
    assert workflow_runs_recover(now=now).failed == 0

    for run in (stranded, orphan):
        run.refresh_from_db()
        assert run.status == "failed" and run.error_code == "run_interrupted"
        assert run.finished_at == now
        assert "re-run" in run.error_message
    assert Event.objects.filter(type="workflow_run.failed").count() == 2
    assert set(
        Event.objects.filter(type="workflow_run.failed").values_list("data__run_id", flat=True)
    ) == {str(stranded.pk), str(orphan.pk)}
    busy.refresh_from_db()
    fresh.refresh_from_db()
    assert busy.status == "running" and fresh.status == "queued"


def test_a_run_given_up_on_keeps_its_failure_when_its_worker_finishes_late(workflow, monkeypatch):
    run = _run(workflow, status="queued", created=timezone.now(), queued=timezone.now())
    later = timezone.now() + timedelta(seconds=conf.WORKFLOW_RUN_STRANDED_AFTER_SECONDS + 1)

    def slow_steps(run, **kwargs):
        workflow_runs_recover(now=later)  # meanwhile, the sweep gives up on it
        return {"ok": True}

    monkeypatch.setattr(workflow_runs, "_run_steps", slow_steps)
    finished = workflow_runs.workflow_run_execute(run_id=run.pk)

    assert finished.status == "failed" and finished.error_code == "run_interrupted"
    assert finished.output is None
    assert list(Event.objects.values_list("type", flat=True)) == ["workflow_run.failed"]

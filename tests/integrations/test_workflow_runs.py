"""The run history's retention: old runs are purged in batches, recent ones stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import WorkflowRun, WorkflowRunStep
from integrations.services.workflow_runs import workflow_runs_purge
from tests import factories

pytestmark = pytest.mark.django_db


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

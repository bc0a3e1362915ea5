"""The event registry (integrations.services.events.EVENT_TYPES) names every type the outbox
sends, so a webhook endpoint can choose any of them."""

from __future__ import annotations

import re
from pathlib import Path

from integrations.models import WorkflowRun
from integrations.services.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
NAME = r"""["']((?:credential|installation|workflow_run)\.[a-z_]+)["']"""
# How the services name the type of an event they emit: type="…", event_type="…" (or
# event_type="…" if … else "…"), events=("…", "…").
TYPE_ARGUMENT = re.compile(rf"\b(?:type|event_type)=\s*{NAME}(?:\s+if\s+[^,]+?\s+else\s+{NAME})?")
EVENTS_ARGUMENT = re.compile(r"\bevents=\(([^)]*)\)")


def _emitted_types() -> set[str]:
    found = set()
    for folder in ("integrations", "connect", "api", "accounts"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            for match in TYPE_ARGUMENT.finditer(text):
                found.update(name for name in match.groups() if name)
            for match in EVENTS_ARGUMENT.finditer(text):
                found.update(re.findall(NAME, match.group(1)))
    return found


def test_every_event_type_the_services_emit_is_registered():
    emitted = _emitted_types()
    assert {"credential.created", "credential.expired", "installation.needs_update"} <= emitted
    assert emitted <= set(EVENT_TYPES), emitted - set(EVENT_TYPES)


def test_a_workflow_runs_final_statuses_are_registered():
    # workflow_runs.py emits f"workflow_run.{run.status}" for a finished run.
    assert {f"workflow_run.{status}" for status in WorkflowRun.FINISHED_STATUSES} <= set(
        EVENT_TYPES
    )


def test_every_registered_type_says_what_it_means():
    assert all(description.endswith(".") for description in EVENT_TYPES.values())

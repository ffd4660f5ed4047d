"""Recorded workflow histories replay on today's workflow code without non-determinism.

The histories in ``tests/histories`` were recorded by ``python -m tests.record_histories`` from a
real incident (pause and resume, an escalation and its confirmation). A workflow change that would
break incidents already running fails here, before it reaches a worker.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from keyrevoke.settings import Settings
from keyrevoke.temporal_client import data_converter
from tests.record_histories import HISTORIES, REPLAY_PAYLOAD_KEY
from workflows.incident import IncidentWorkflow
from workflows.venue import PATCHES, VenueWorkflow

RECORDED = sorted(HISTORIES.rglob("*.json"))


def test_histories_were_recorded() -> None:
    names = {path.stem for path in RECORDED}
    assert any(name.endswith("-venue-binance") for name in names)
    assert any("-venue-" not in name for name in names)  # the incident workflow itself
    # Both sides of the small-first-batch patch: histories from before it, and with its marker.
    venue_histories = [p for p in RECORDED if "-venue-" in p.stem]
    marked = [p for p in venue_histories if _patches(p)]
    assert marked
    assert len(marked) < len(venue_histories)
    assert all("small-first-batch" in _patches(p) and _patches(p) <= set(PATCHES) for p in marked)
    # The newest recording went through every patch but the one only a race reaches (control given
    # while a venue workflow is being started): the current code's paths are what it replays.
    newest = max(p.parent.name for p in RECORDED)
    seen = set().union(*(_patches(p) for p in RECORDED if p.parent.name == newest))
    assert seen == set(PATCHES) - {"control-during-start"}


def _patches(path: Path) -> set[str]:
    """The patch ids a history's workflow code went through (Temporal's ``core_patch`` markers)."""
    found = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes", {})
        if marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.name}/{p.stem}" for p in RECORDED])
async def test_recorded_history_replays(path: Path, tmp_path: Path) -> None:
    converter = data_converter(Settings(state_dir=tmp_path, payload_key=REPLAY_PAYLOAD_KEY), create=False)  # type: ignore[arg-type]
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[IncidentWorkflow, VenueWorkflow], data_converter=converter)
    await replayer.replay_workflow(history)

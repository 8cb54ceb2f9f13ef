"""What a log tells of a worker: problems and changes at once, finished units once a minute."""

from __future__ import annotations

import dataclasses

import pytest

from core import worker_cli
from core.events import Tally, WorkerEvent, units_line
from tests.stand_ins import Clock

NOW = 1_800_000_000.0


def finished(index: int, at: float, version: int) -> WorkerEvent:
    return WorkerEvent(
        "unit_finished", "idle", f"Finished unit {index} in 0.2 s", at, version, index, images=64
    )


def test_finished_units_are_told_once_a_minute() -> None:
    tally: Tally[WorkerEvent] = Tally()
    assert tally.take(NOW) == []
    unit = WorkerEvent("unit_finished", "computing", "Finished unit 3 (64 images)", at=NOW)
    tally.add(dataclasses.replace(unit, version=7, images=64))
    first = tally.take(NOW)
    assert units_line(first) == (NOW, "Finished unit 3 (64 images)")  # the first at once
    for i in range(30):
        tally.add(dataclasses.replace(unit, version=8 + i // 2, images=64, at=NOW + i))
    assert tally.take(NOW + 59) == []
    assert units_line(tally.take(NOW + 60)) == (
        NOW + 29,
        "Finished 30 units in the last minute (versions 8–22, 1,920 images)",
    )
    assert tally.take(NOW + 200) == []  # nothing finished since
    tally.add(dataclasses.replace(unit, version=23, images=64, at=NOW + 61))
    assert tally.take(NOW + 62) == []
    assert units_line(tally.take(NOW + 62, final=True)) == (NOW + 61, "Finished unit 3 (64 images)")


def test_a_headless_worker_prints_changes_and_a_line_a_minute_not_every_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock(NOW)
    on_event = worker_cli._printer(clock)
    on_event(WorkerEvent("state", "connecting", "Connecting to the run", NOW))
    for version in range(90):  # two 0.2-s units a version, a version every 2 s, three minutes
        clock.now = NOW + 2 * version
        on_event(WorkerEvent("state", "downloading", f"Downloading the model of version {version}"))
        for unit in (2 * version, 2 * version + 1):
            on_event(WorkerEvent("state", "downloading", f"Fetching images for unit {unit}"))
            on_event(WorkerEvent("state", "computing", f"Computing unit {unit} — 0%"))
            on_event(WorkerEvent("progress", "computing", f"Computing unit {unit} — 50%"))
            on_event(WorkerEvent("state", "uploading", f"Uploading unit {unit}"))
            on_event(finished(unit, clock.now, version))
        on_event(WorkerEvent("state", "idle", "Waiting: no work right now"))
        if version == 45:
            on_event(WorkerEvent("error", "error", "Cannot use the database (gone); retrying"))
    clock.now += 1
    on_event(WorkerEvent("state", "stopped", "Stopped"))
    assert capsys.readouterr().err.splitlines() == [
        "Connecting to the run",
        "Finished unit 0 in 0.2 s",  # the first at once: the worker works
        "Waiting: no work right now",
        "Finished 59 units in the last minute (versions 0–29, 3,776 images)",
        "Waiting: no work right now",
        "Cannot use the database (gone); retrying",
        "Waiting: no work right now",
        "Finished 60 units in the last minute (versions 30–59, 3,840 images)",
        "Waiting: no work right now",
        "Finished 60 units in the last minute (versions 60–89, 3,840 images)",  # before stopping
        "Stopped",
    ]

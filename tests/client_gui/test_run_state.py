"""Run figures from rows, and the reader that fetches only what is new."""

from __future__ import annotations

import dataclasses

import pytest

from client_gui.run_state import (
    RunReader,
    contribution,
    format_duration_s,
    leaderboard,
    summarize_run,
)
from core.store import Credits, MetricsRow, RunRow, WorkerCredit, WorkerRow
from core.verification import TrustRecord
from tests.coordinator.harness import make_tiny_run, serve_until, start_worker, stop_processes

NOW = 1_000_000.0
RUN = RunRow("demo", "active", {}, {}, 60, 32, 12, 0, 0.0, 0.0)


def worker(name: str, units: int, seen_ago: float, wid: int = 1) -> WorkerRow:
    return WorkerRow(
        wid,
        name,
        "host",
        "cpu",
        0.0,
        NOW - seen_ago,
        "computing",
        units,
        units * 12,
        units * 1.5,
        0,
    )


def metrics(version: int, at: float, images: int = 36) -> MetricsRow:
    return MetricsRow(version, 1.0, 1.0, 0.5, 0.5, images, 3, 0, 0.1, None, at)


def test_summary_counts_active_volunteers_and_versions_per_hour():
    rows = [metrics(v, NOW - 600 + v * 60) for v in range(10)]  # one version a minute
    workers = [worker("ada", 5, 10), worker("ada", 2, 30, 2), worker("bob", 1, 600, 3)]
    summary = summarize_run(RUN, rows, workers, NOW)
    assert summary.active_volunteers == 1  # bob was last seen 10 min ago
    assert summary.versions_per_hour == pytest.approx(60.0)
    assert summarize_run(RUN, rows[:1], None, NOW).versions_per_hour is None


def test_summary_says_how_many_computers_wait_for_work():
    run = dataclasses.replace(RUN, settings={"num_workunits_per_update": 2})
    workers = [worker(f"w{i}", 1, 5, i) for i in range(5)] + [worker("gone", 1, 900, 9)]
    summary = summarize_run(run, [], workers, NOW)
    assert (summary.waiting, summary.units_per_version) == (3, 2)  # 5 active, 2 units
    assert summarize_run(run, [], workers[:2], NOW).waiting == 0
    assert summarize_run(run, [], None, NOW).waiting == 0  # unreadable: nothing claimed


def test_summary_carries_what_stops_the_run():
    assert summarize_run(RUN, [], None, NOW).problem is None
    alert: dict[str, object] = {"kind": "no_workers", "message": "no worker has been seen"}
    stalled = dataclasses.replace(RUN, alert=alert)
    assert summarize_run(stalled, [], None, NOW).problem == "no worker has been seen"


def test_leaderboard_groups_a_volunteers_sessions_and_marks_me():
    board = leaderboard(
        [worker("ada", 5, 0), worker("bob", 9, 0, 2), worker("ada", 6, 0, 3)], "ada"
    )
    assert [(r.name, r.units, r.is_me) for r in board] == [("ada", 11, True), ("bob", 9, False)]


def test_contribution_and_share_of_the_last_hour():
    # ada's two worker rows (two sessions) against what the run accepted in the last hour.
    rows = [worker("ada", 4, 0), worker("ada", 2, 0, 2), worker("bob", 9, 0, 3)]
    recent = Credits(NOW - 3600, (WorkerCredit(1, 1, 12), WorkerCredit(2, 2, 24)), 10, 120)
    mine = contribution(rows, "ada", recent)
    assert (mine.units, mine.images, mine.compute_s) == (6, 72, 9.0)
    assert mine.share_last_hour == pytest.approx(36 / 120)
    # Nothing accepted in the last hour, or the record unreadable: no share to show.
    assert contribution(rows, "ada", Credits(NOW - 3600, (), 0, 0)).share_last_hour is None
    assert contribution(rows, "ada", None).share_last_hour is None
    # Workers unreadable: nothing is made up from what this app session saw.
    alone = contribution(None, "ada", recent)
    assert (alone.units, alone.images, alone.share_last_hour) == (0, 0, 0.0)


def test_durations_for_people():
    assert [format_duration_s(s) for s in (42, 720, 3 * 3600 + 300)] == [
        "42 s",
        "12 min",
        "3 h 05 min",
    ]


@pytest.mark.slow
def test_reader_fetches_only_what_is_new(tmp_path):
    run = make_tiny_run(tmp_path, sample_every=1)
    store = run.store()
    worker_process = start_worker(run, "reader-test")
    try:
        serve_until(store, 2)
        reader = RunReader(run.url)
        first = reader.read()
        assert [m.version for m in first.metrics] == [0, 1]
        assert [s.version for s in first.samples] == [1, 2]
        assert first.workers is not None and first.workers[0].name == "reader-test"
        assert first.events and first.run.version == 2
        serve_until(store, 3)
        second = reader.read()
        assert [m.version for m in second.metrics] == [2]
        assert [s.version for s in second.samples] == [3]
        assert min(e.id for e in second.events) > max(e.id for e in first.events)
        reader.close()
    finally:
        stop_processes([worker_process])
        store.dispose()


def test_contribution_says_what_verification_made_of_my_results():
    ada = dataclasses.replace(worker("ada", 4, 0), verified=3, volunteer="ada_role")
    confirmed = contribution([ada], "ada", None, trust=[TrustRecord("ada_role", 2, 3, 1)])
    assert confirmed.verified == 3 and not confirmed.refused
    assert confirmed.standing is not None
    assert "3 of your results were confirmed" in confirmed.standing
    assert "1 came out slightly different" in confirmed.standing
    caught = TrustRecord("ada_role", quarantined=True, reason="result 9 differs from bob's")
    refused = contribution([ada], "ada", None, trust=[caught])
    assert refused.refused and refused.standing is not None
    assert "no longer count: result 9 differs from bob's" in refused.standing
    # Another volunteer's record is not mine; no verification at all says nothing.
    other = contribution([ada], "ada", None, trust=[TrustRecord("bob", quarantined=True)])
    assert not other.refused
    plain = contribution([worker("ada", 4, 0)], "ada", None, trust=[])
    assert plain.standing is None


def test_leaderboard_counts_confirmed_results():
    rows = [
        dataclasses.replace(worker("ada", 5, 0), verified=4),
        dataclasses.replace(worker("ada", 1, 0, 2), verified=1),
    ]
    assert [(r.name, r.verified) for r in leaderboard(rows, "ada")] == [("ada", 5)]


def test_summary_says_what_a_unit_computes():
    assert summarize_run(RUN, [], None, NOW).unit_kind == "gradients (exact synchronous training)"
    local = dataclasses.replace(RUN, settings={"inner_steps": 16, "images_per_work_unit": 1024})
    assert summarize_run(local, [], None, NOW).unit_kind.startswith(
        "local steps (16 inner SGD steps of lr 0.1 per unit"
    )

"""The status line says what happens and why in every situation."""

from __future__ import annotations

import dataclasses

from client_gui import status
from client_gui.status import StatusInputs, status_line

BASE = StatusInputs(
    phase="connected",
    problem=None,
    run_name="demo",
    donating=True,
    worker_state="computing",
    worker_message="Computing unit 812 — 43%",
    policy_reason=None,
    idle_only=False,
    idle_known=True,
)


def line(**changes):
    return status_line(dataclasses.replace(BASE, **changes))


def test_computing_shows_the_workers_sentence():
    assert line() == ("Computing unit 812 — 43%", status.WORKING)


def test_policy_pause_wins_and_says_why():
    text, state = line(policy_reason="snoozed for 2 h 14 min", worker_state="paused")
    assert (text, state) == ("Paused: snoozed for 2 h 14 min", status.PAUSED)


def test_run_paused_by_owner_is_waiting_not_paused():
    text, state = line(
        worker_state="paused", worker_message="Waiting: the run is paused by its owner"
    )
    assert (text, state) == ("Waiting: the run is paused by its owner", status.WAITING)


def test_not_connected_and_failures_say_what_to_do():
    assert line(phase="none")[0].startswith("Not connected: paste an invite code")
    text, state = line(phase="failed", problem="Cannot reach the run's server at h:5432/db.")
    assert state == status.ERROR and "Cannot reach" in text


def test_ready_paused_by_you_and_finishing():
    assert line(donating=False, worker_state="stopped")[0].startswith("Ready: press Start")
    assert line(donating=False, worker_state="paused", worker_message="Paused: paused by you")[
        0
    ].startswith("Paused by you")
    assert line(finishing=True)[0].endswith("(then pausing, as you asked)")


def test_fallbacks_and_device_notes_are_stated():
    text = line(idle_only=True, idle_known=False)[0]
    assert "idle time unknown here, so computing anyway" in text
    text = line(device_note="GPU cuda:1 skipped: 1.5 GB is below the 2 GB needed")[0]
    assert text.endswith("GPU cuda:1 skipped: 1.5 GB is below the 2 GB needed")


def test_worker_errors_are_errors():
    text, state = line(worker_state="error", worker_message="Cannot use the database (x)")
    assert state == status.ERROR and text == "Cannot use the database (x)"

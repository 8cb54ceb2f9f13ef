"""The one status line that always says what the app is doing and why, and the tray's state."""

from __future__ import annotations

from dataclasses import dataclass

# Tray states: how the icon looks.
OFF = "off"  # not donating (not connected, or ready and waiting for Start)
WORKING = "working"  # fetching, computing or uploading a unit
WAITING = "waiting"  # donating, but there is nothing to do right now
PAUSED = "paused"  # donating is held back: snooze, schedule, idle-only, usage cap, you
ERROR = "error"  # something is wrong; the line says what

_BUSY = ("downloading", "computing", "uploading")


@dataclass(frozen=True)
class StatusInputs:
    """Everything the status line depends on, gathered by the session."""

    phase: str  # "none" | "checking" | "starting_local" | "connected" | "failed"
    problem: str | None  # why connecting failed (phase "failed")
    run_name: str | None
    donating: bool  # the volunteer pressed Start (and not Pause since)
    worker_state: str  # the worker's state ("stopped" when there is no worker)
    worker_message: str  # the worker's own sentence for that state
    policy_reason: str | None  # why the donation policy holds computing back now, if it does
    idle_only: bool
    idle_known: bool  # this desktop reports idle time
    finishing: bool = False  # Finish current unit was pressed: pause once it is done
    device_note: str | None = None  # e.g. "GPU 1 skipped: 2 GB is below the 4 GB needed"


def status_line(s: StatusInputs) -> tuple[str, str]:
    """(sentence, tray state) for the current situation."""
    if s.phase == "none":
        return "Not connected: paste an invite code on the Connect page, or try it locally", OFF
    if s.phase == "checking":
        return "Connecting: checking the run's database…", WAITING
    if s.phase == "starting_local":
        return "Starting the local demo run on this computer…", WAITING
    if s.phase == "failed":
        return f"Not connected: {s.problem or 'the connection failed'}", ERROR
    if not s.donating:
        return _not_donating(s)
    if s.worker_state == "error":
        return s.worker_message, ERROR
    if s.policy_reason is not None:
        return f"Paused: {s.policy_reason}", PAUSED
    if s.worker_state in _BUSY:
        text = s.worker_message
        if s.finishing:
            text += " (then pausing, as you asked)"
        if s.idle_only and not s.idle_known:
            text += " (idle time unknown here, so computing anyway)"
        if s.device_note:
            text += f" · {s.device_note}"
        return text, WORKING
    if s.worker_state == "paused":
        waiting = s.worker_message.startswith("Waiting")
        return s.worker_message, WAITING if waiting else PAUSED
    if s.worker_state == "stopped":
        return "Starting the worker…", WAITING
    return s.worker_message or "Starting the worker…", WAITING


def _not_donating(s: StatusInputs) -> tuple[str, str]:
    run = f" to the run “{s.run_name}”" if s.run_name else ""
    if s.worker_state == "paused" and s.worker_message.endswith("after finishing a unit"):
        return "Paused after finishing the unit: press Start to go on", PAUSED
    if s.worker_state == "paused":
        return "Paused by you: press Start to go on", PAUSED
    if s.worker_state in _BUSY:
        return f"Pausing: {s.worker_message}", WORKING
    return f"Ready: press Start to lend this computer{run}", OFF

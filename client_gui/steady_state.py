"""What the worker does over the last second, so the status line does not flicker.

With short units the worker changes state several times a second (downloading, computing,
uploading, resting for the usage cap). The status line shows the state the worker spent most
of the last second in, with that state's newest message; settled states (paused, stopped,
error) show at once, as do the first moments after leaving one (Start, Resume).
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 1.0  # seconds of the worker's history the shown state summarises
SETTLED = ("paused", "stopped", "error")  # shown the moment they happen


class SteadyState:
    """The worker's states over time; `shown(now)` is the one to show."""

    def __init__(self, state: str = "stopped", message: str = "", now: float = 0.0) -> None:
        self._changes: deque[tuple[float, str]] = deque([(now, state)])  # (since, state)
        self._messages = {state: message}  # the newest message of each state

    def record(self, state: str, message: str, now: float) -> bool:
        """Note what the worker says; True when it should be shown at once (settled moves)."""
        last = self._changes[-1][1]
        self._messages[state] = message
        if state == last:
            return False
        if state in SETTLED or last in SETTLED:  # history before a settled move is over
            self._changes = deque([(now, state)])
            return True
        self._changes.append((now, state))
        return False

    def shown(self, now: float) -> tuple[str, str]:
        """(state, message): the state held longest over the last `WINDOW_S` seconds."""
        start = now - WINDOW_S
        while len(self._changes) > 1 and self._changes[1][0] <= start:
            self._changes.popleft()  # wholly before the window
        held: dict[str, float] = {}
        ends = [since for since, _ in list(self._changes)[1:]] + [now]
        for (since, state), end in zip(self._changes, ends, strict=True):
            held[state] = held.get(state, 0.0) + max(0.0, end - max(since, start))
        # The longest held; among equals the most recent (later in `_changes`).
        order = {state: index for index, (_, state) in enumerate(self._changes)}
        state = max(held, key=lambda s: (held[s], order[s]))
        return state, self._messages.get(state, "")

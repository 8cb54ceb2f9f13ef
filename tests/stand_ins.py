"""Small stand-ins the tests share: a clock they move by hand, a terminal that is a string."""

from __future__ import annotations

import io


class Clock:
    """A clock that reads `now` until a test moves it."""

    def __init__(self, start: float = 1.7e9) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True

"""Exponential backoff with jitter, so a crowd of workers does not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial_s` up to `maximum_s`, each randomised by ±`jitter`."""

    def __init__(
        self,
        initial_s: float = 0.5,
        maximum_s: float = 30.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self.maximum_s, self.initial_s * 2**self._attempt)
        self._attempt += 1
        return base * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self._attempt = 0

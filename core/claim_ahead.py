"""Claiming a fast worker's next unit while its current unit computes.

Between two units a worker claims (one database round trip) and fetches the unit's images;
for a GPU whose units take a fraction of a second that gap is a large share of its time. A
worker whose last unit computed in under `CLAIM_AHEAD_BELOW_S` therefore claims its next unit
and fetches its images in a background thread while the current one computes, and starts it
the moment the current one is done. The claimed unit's lease has its own heartbeat from the
claim on, so however long the current unit takes, the one waiting behind it stays leased.

Why this and not larger units or several units per claim: units are slices of the epoch fixed
by the run's seed, so their size defines the trajectory and is never a worker's choice; and a
fast worker that pulls one unit ahead gets work in proportion to its speed with the queue's
existing claim. It holds at most one unit it is not computing, so at the end of a version it
delays the close by at most one of its own (short) units.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from torch import Tensor

from core.heartbeat import Heartbeat
from core.store import Lease, StoreError

log = logging.getLogger(__name__)

CLAIM_AHEAD_BELOW_S = 2.0  # units computed faster than this (seconds) make a worker claim ahead


class NextUnit:
    """One claim (and its images) made in a background thread; `take` waits for it.

    `beat` starts the claimed lease's heartbeat; whoever takes the unit owns that heartbeat.
    """

    def __init__(
        self,
        claim: Callable[[], Lease | None],
        images: Callable[[Lease], Tensor],
        beat: Callable[[Lease], Heartbeat],
    ) -> None:
        self._claim = claim
        self._images = images
        self._beat = beat
        self._heartbeat: Heartbeat | None = None
        self._fetched: Tensor | None = None
        self._thread = threading.Thread(target=self._run, name="claim-ahead", daemon=True)

    def start(self) -> NextUnit:
        self._thread.start()
        return self

    def take(self) -> tuple[Heartbeat, Tensor | None] | None:
        """The claimed lease's running heartbeat and its images (None if fetching them
        failed), or None if nothing was claimed."""
        self._thread.join()
        return None if self._heartbeat is None else (self._heartbeat, self._fetched)

    def _run(self) -> None:
        try:
            lease = self._claim()
        except StoreError as exc:  # no unit ahead: the engine claims as usual afterwards
            log.debug("claim ahead failed: %s", exc)
            return
        if lease is None:
            return
        self._heartbeat = self._beat(lease)
        try:
            self._fetched = self._images(lease)
        except StoreError as exc:  # the engine fetches them itself when it starts the unit
            log.debug("fetching images ahead failed: %s", exc)

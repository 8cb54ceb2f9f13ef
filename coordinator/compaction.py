"""Compaction beside the coordinator's loop, not inside it: PostgreSQL's VACUUM and SQLite's
WAL checkpoint (`Store.compact`).

After each version the coordinator's tidy deletes tens to hundreds of MiB of payloads, weights
and optimizer state. Making that space reusable walks every page written: at 32 volunteers
PostgreSQL's VACUUM took seconds and was half of the coordinator's time inside the loop
(py-spy); in the demo on SQLite the WAL checkpoint took ~50 ms of a ~100 ms tidy every 2 s,
during which results waited for their verdicts and the workers for the next version. Neither
touches anything the loop depends on (a PASSIVE checkpoint never blocks SQLite's writers), so
both run in their own thread and connection, at most one at a time; a failed one (a lost
database) is only logged, since the next tidy compacts again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.store import StoreError

log = logging.getLogger(__name__)

THREAD_NAME = "compaction"


class BackgroundCompaction:
    """`start()` runs `compact` in a thread unless one is still running."""

    def __init__(self, compact: Callable[[], None]) -> None:
        self._compact = compact
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Compact in the background; False (and nothing started) if the last one still runs."""
        if self.running():
            return False
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        return True

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Wait for the compaction in flight, if any."""
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._compact()
        except StoreError as exc:
            log.warning("compacting the database failed (the next tidy retries): %s", exc)

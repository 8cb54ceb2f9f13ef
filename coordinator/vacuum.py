"""PostgreSQL's VACUUM beside the coordinator's loop, not inside it.

After each version of a class the coordinator's tidy deletes hundreds of MiB of payloads,
weights and optimizer state, and vacuums those tables so their space is reused at once
(core/store/housekeeping.py). At 32 volunteers that VACUUM took seconds, and inside the loop it
was half of the coordinator's time (py-spy): results waited for their verdicts and the
volunteers for the next version. It touches nothing the loop depends on, so it runs in its own
thread and connection, at most one at a time; a failed one (a lost database) is only logged,
since the next tidy vacuums again and autovacuum is there too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.store import StoreError

log = logging.getLogger(__name__)


class BackgroundVacuum:
    """`start()` runs `vacuum` in a thread unless one is still running."""

    def __init__(self, vacuum: Callable[[], None]) -> None:
        self._vacuum = vacuum
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Vacuum in the background; False (and nothing started) if the last one still runs."""
        if self.running():
            return False
        self._thread = threading.Thread(target=self._run, name="vacuum", daemon=True)
        self._thread.start()
        return True

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Wait for the vacuum in flight, if any."""
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._vacuum()
        except StoreError as exc:
            log.warning(
                "vacuuming the tables of deleted rows failed (the next tidy retries): %s", exc
            )

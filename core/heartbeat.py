"""What keeps a worker's lease and its idle wait alive from other threads: the heartbeat that
renews a unit's lease while it computes and uploads, and the wake-up flag that ends an idle
wait for work when a control (pause, stop) is used."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.store import Lease, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)


class WakeUp(threading.Event):
    """The engine's wake-up flag; setting it also ends the store wait the engine idles in."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting_on: Store | None = None  # the store whose wait_for_work the engine is in

    def set(self) -> None:
        super().set()
        store = self.waiting_on
        if store is not None:
            store.interrupt_wait()


class Heartbeat:
    """Keeps a lease alive from a background thread, from its claim until its unit is submitted
    or given back: while the unit waits (claimed ahead), downloads, computes and uploads."""

    def __init__(self, store: Store, lease: Lease, every_s: float) -> None:
        self._store = store
        self.lease = lease
        self._every_s = every_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self.lost = False
        self.on_lost: Callable[[], None] = lambda: None

    @property
    def every_s(self) -> float:
        return self._every_s

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self._every_s):
            try:
                self.lease = self._store.heartbeat(self.lease)
            except LeaseLost:
                self.lost = True
                self.on_lost()
                return
            except StoreError as exc:  # e.g. database unreachable: try again at the next beat
                log.warning("heartbeat failed: %s", exc)

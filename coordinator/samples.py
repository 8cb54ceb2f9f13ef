"""Sample grids and quality figures taken beside the closes, not between them.

An evaluation (a grid and the sliced Wasserstein distance over 512 images) takes seconds; a
version of a small run closes in a fraction of one. Taken inside the close, every sample held
the next close back and left every worker waiting for it (the demo: ~1.5 s every 50 versions).
Here each runs in its own thread from the weights the close published (tensors that are never
changed in place), at most one at a time; its error is raised in the coordinator's own thread
at the next look, so a lost database or a full disk is handled like any other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import torch

Result = TypeVar("Result")


class BackgroundSample(Generic[Result]):
    """One evaluation at a time in its own thread; `take(version, params)` does the work."""

    def __init__(self, take: Callable[[int, Mapping[str, torch.Tensor]], Result]) -> None:
        self._take = take
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, version: int, params: Mapping[str, torch.Tensor]) -> None:
        """Evaluate `version` in the background; first waits for the one before, if any."""
        self.wait()
        self._thread = threading.Thread(
            target=self._run, args=(version, params), name=f"sample-{version}", daemon=True
        )
        self._thread.start()

    def check(self) -> None:
        """Raise the error of a finished evaluation, if it failed."""
        if self._thread is not None and not self._thread.is_alive():
            self.wait()

    def wait(self) -> None:
        """Wait for the evaluation in flight, if any; raise its error."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, version: int, params: Mapping[str, torch.Tensor]) -> None:
        try:
            self._take(version, params)
        except BaseException as exc:  # raised again in the coordinator's thread (`wait`)
            self._error = exc

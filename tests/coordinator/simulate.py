"""In-process workers for coordinator tests: real store calls and real gradients, no processes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import torch

from coordinator.loop import Coordinator
from core.codec import Precision, encode_tensors
from core.model import GAN, gan_from_parameters
from core.store import Lease, Store
from core.training import UnitResult, intra_op_threads, unit_gradients
from tests.coordinator.harness import TinyRun, published_params


class LocalWorker:
    """A registered worker in the test process that claims, computes and submits on demand.

    Gradients are computed exactly as a worker process computes them (the run's micro-batch
    and thread count), so honest results reproduce the reference trainer bitwise.
    """

    def __init__(self, run: TinyRun, store: Store, name: str) -> None:
        self.run = run
        self.store = store
        self.name = name
        self.id = store.register_worker(name, "testhost", "cpu")
        self._images = run.images()  # uint8 (N, 3, S, S): the run's whole synthetic dataset
        self._gan: tuple[int, GAN] | None = None

    def claim(self) -> Lease:
        """Lease the next unit; fails the test when there is none."""
        lease = self.store.claim(self.id)
        assert lease is not None, f"{self.name} found no unit to claim"
        return lease

    def gradients(self, lease: Lease) -> UnitResult:
        """Honest gradients of the leased unit at its version's published weights."""
        settings = self.run.settings
        images = self._images[list(lease.sample_indices)]
        with intra_op_threads(settings.compute_threads):
            return unit_gradients(
                self._gan_of(lease.version), images, lease.seed, settings.batch_size
            )

    def submit(
        self,
        lease: Lease,
        payload: bytes,
        *,
        precision: str | None = None,
        claimed_samples: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> int:
        """Submit any payload for `lease` (defaults: the run's precision, the unit's size)."""
        return self.store.submit(
            lease,
            payload,
            precision or self.run.settings.precision,
            len(lease.sample_indices) if claimed_samples is None else claimed_samples,
            metrics or {"d_loss": 1.0, "g_loss": 1.0, "d_real": 0.5, "d_fake": 0.5},
            0.01,
        )

    def submit_honest(self, lease: Lease, *, claimed_samples: int | None = None) -> int:
        """Compute the unit's gradients and submit them as a worker process would."""
        result = self.gradients(lease)
        return self.submit(
            lease,
            encode_payload(result.grads, self.run.settings.precision),
            claimed_samples=claimed_samples,
            metrics=result.metrics.as_dict(),
        )

    def work_one(self) -> int | None:
        """Claim and honestly complete one unit; None when there was nothing to claim."""
        lease = self.store.claim(self.id)
        return None if lease is None else self.submit_honest(lease)

    def _gan_of(self, version: int) -> GAN:
        if self._gan is None or self._gan[0] != version:
            params = published_params(self.store, version)
            self._gan = (version, gan_from_parameters(self.run.model, params))
        return self._gan[1]


def encode_payload(grads: Mapping[str, torch.Tensor], precision: str) -> bytes:
    """Gradients as the safetensors bytes a worker uploads."""
    return encode_tensors(grads, cast(Precision, precision))


def run_to(
    coordinator: Coordinator,
    workers: Sequence[LocalWorker],
    version: int,
    timeout_s: float = 120.0,
) -> None:
    """Let the workers complete units and the coordinator close versions until `version`."""
    deadline = time.monotonic() + timeout_s
    while coordinator.version < version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {version} not reached; at {coordinator.version}")
        for worker in workers:
            worker.work_one()
        coordinator.step()
    coordinator.finish()  # as a serving coordinator does when it stops (state, samples)


def sqlite_size(path: Path) -> tuple[int, int]:
    """(bytes on disk, bytes in use) of an SQLite database after folding its WAL back in.

    Bytes on disk include the -wal file, emptied by a TRUNCATE checkpoint; bytes in use leave
    out pages on the free list, which SQLite reuses before it grows the file.
    """
    with sqlite3.connect(path) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "another connection kept the WAL checkpoint from finishing"
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.close()  # the context manager only commits
    on_disk = sum(
        Path(str(path) + suffix).stat().st_size
        for suffix in ("", "-wal")
        if Path(str(path) + suffix).exists()
    )
    return on_disk, (pages - free) * page_size

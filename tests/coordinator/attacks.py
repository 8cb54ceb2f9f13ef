"""Hostile but well-formed results (RELIABILITY.md), for tests and benchmarks.poisoning.

Each attack turns the honest computation of a leased unit into what a cheater submits. All of
them pass the coordinator's payload checks (names, shapes, finite values, the norm bound), so
only recomputation by another volunteer can catch them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.codec import global_norm
from core.store import Lease, Store, StoreError
from core.training import UnitResult, intra_op_threads, unit_gradients
from core.verification import TOLERANCE
from tests.coordinator.simulate import LocalWorker, encode_payload

Grads = dict[str, torch.Tensor]
Attack = Callable[["Cheater", Lease, UnitResult], Grads | bytes]
NORM_FACTOR = 50.0  # RunSettings.norm_factor's default: results above it × median are refused


def scaled(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    return {n: g * 3.0 for n, g in honest.grads.items()}


def sign_flipped(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    return {n: -g for n, g in honest.grads.items()}


def scaled_and_flipped(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    return {n: g * -3.0 for n, g in honest.grads.items()}


def random_at_bound(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    """A random direction with 0.8 × the norm bound (taking the honest norm as the median)."""
    gen = torch.Generator().manual_seed(lease.seed)
    noise = {n: torch.randn(g.shape, generator=gen) for n, g in honest.grads.items()}
    scale = 0.8 * NORM_FACTOR * global_norm(honest.grads) / global_norm(noise)
    return {n: t * scale for n, t in noise.items()}


def zeros(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    """A lazy volunteer: computes nothing."""
    return {n: torch.zeros_like(g) for n, g in honest.grads.items()}


def stale(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    """Computed at version 0's weights, whatever the unit's version (never refetches)."""
    images = cheater._images[list(lease.sample_indices)]
    with intra_op_threads(cheater.run.settings.compute_threads):
        return unit_gradients(
            cheater._gan_of(0), images, lease.seed, cheater.run.settings.batch_size
        ).grads


def swapped_labels(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    """D pushed the wrong way (as if trained with real and fake labels swapped); G honest."""
    return {n: (-g if n.startswith("D.") else g) for n, g in honest.grads.items()}


def within_tolerance(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads:
    """A bias inside the cross-device tolerance: 0.3 × TOLERANCE relative, one fixed direction."""
    gen = torch.Generator().manual_seed(1234)
    bias = {n: torch.randn(g.shape, generator=gen) for n, g in honest.grads.items()}
    size = 0.3 * TOLERANCE[cheater.run.settings.precision] * global_norm(honest.grads)
    scale = size / global_norm(bias)
    return {n: g + bias[n] * scale for n, g in honest.grads.items()}


def copier(cheater: Cheater, lease: Lease, honest: UnitResult) -> Grads | bytes:
    """Sends another volunteer's result for the unit when it can get one (a leak, or a
    colluding peer: `peek`), and the honest computation otherwise."""
    copied = cheater.peek(lease)
    return honest.grads if copied is None else copied


ATTACKS: dict[str, Attack] = {
    "scaled": scaled,
    "sign_flipped": sign_flipped,
    "scaled_and_flipped": scaled_and_flipped,
    "random_at_bound": random_at_bound,
    "zeros": zeros,
    "stale": stale,
    "swapped_labels": swapped_labels,
    "within_tolerance": within_tolerance,
    "copier": copier,
}
CAUGHT = tuple(a for a in ATTACKS if a not in ("within_tolerance", "copier"))  # quarantined


class Cheater(LocalWorker):
    """A LocalWorker that submits `attack(honest computation)` instead of the honest result."""

    def __init__(
        self,
        run: object,
        store: Store,
        name: str,
        attack: str,
        owner: Store | None = None,
        *,
        honest_first: int = 0,
    ) -> None:
        super().__init__(run, store, name)  # type: ignore[arg-type]
        self.attack = ATTACKS[attack]
        self.honest_first = honest_first  # results computed honestly first (to earn trust)
        self.owner = owner or store  # whose reads stand in for a leak (`copier`)
        self.submitted = 0
        self.cheated = 0  # results that differ from the honest computation

    def submit_honest(self, lease: Lease, *, claimed_samples: int | None = None) -> int:
        honest = self.gradients(lease)
        turned = self.submitted >= self.honest_first
        bad = self.attack(self, lease, honest) if turned else honest.grads
        precision = self.run.settings.precision
        payload = bad if isinstance(bad, bytes) else encode_payload(bad, precision)
        self.submitted += 1
        self.cheated += payload != encode_payload(honest.grads, precision)
        return self.submit(lease, payload, metrics=honest.metrics.as_dict())

    def peek(self, lease: Lease) -> bytes | None:
        """Another worker's payload for this unit, read with the owner's rights."""
        for row in self.owner.version_results(lease.version):
            if row.unit_index == lease.unit_index and row.worker_id != self.id:
                try:
                    return self.owner.result_payload(row.id)
                except StoreError:  # resolved meanwhile: its payload is gone; compute instead
                    return None
        return None

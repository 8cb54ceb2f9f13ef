"""The run's optimizer state in the database: read at start, written after each publish.

A close publishes the new version first and leaves its Adam state (and fp32 master weights,
when the published ones are rounded) to be written `STATE_WRITE_AFTER_S` later, while the
workers compute; a kill in between leaves the closed version's accepted results, from which
`OptimizerStates.load` redoes the last step bit for bit (ARCHITECTURE.md, "the close").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from coordinator.state import decode_optimizer_state, decode_weights, encode_optimizer_state
from core.codec import quantize
from core.config import RunSettings
from core.store import Store, StoreError
from core.training import AdamState, GradientSum, UnitMetrics
from core.unit_kinds import UnitKind

log = logging.getLogger(__name__)

# A new version's Adam state is written this long after the version is published, in the
# loop's next pass: the write holds SQLite's write lock for ~10 ms (16 MiB in the demo), and
# workers claim the new units in the first few ms; written at once, it held every claim off.
STATE_WRITE_AFTER_S = 0.03

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Unsaved:
    """A published version's optimizer state, not yet written."""

    version: int
    params: Params
    adam: AdamState
    settings: RunSettings  # its weights_precision: rounded weights keep fp32 master weights
    published_at: float  # time.monotonic()


class OptimizerStates:
    """Reads the latest version's state, and writes each new one after its publish."""

    def __init__(self, store: Store, result_grads: Callable[[int], Params]) -> None:
        self._store = store
        self._result_grads = result_grads  # a stored result's gradients, by its id
        self._unsaved: _Unsaved | None = None

    def load(self, version: int, settings: RunSettings, kind: UnitKind) -> tuple[Params, AdamState]:
        """The published version's master weights and Adam state; the state is rebuilt (and
        written) if the coordinator stopped between publishing the version and writing it.
        Whatever was not written yet is forgotten: it is rebuilt the same way."""
        self._unsaved = None
        weights, _, _ = self._store.version_weights(version)
        published, lr = decode_weights(weights)
        stored_version, state = self._store.newest_optimizer_state()
        adam, master = decode_optimizer_state(state)
        if stored_version == version:
            return (published if master is None else master), adam
        if stored_version != version - 1:
            raise StoreError(
                f"the newest optimizer state is of version {stored_version}, but the run is at "
                f"version {version}: the database is damaged; restore it from a backup"
            )
        params, adam = self._redo_last_step(version, settings, kind, published, lr, master, adam)
        self._store.store_optimizer_state(version, _encode(params, adam, settings))
        log.info("rebuilt the optimizer state of version %d from its results", version)
        return params, adam

    def published(
        self, version: int, params: Params, adam: AdamState, settings: RunSettings
    ) -> None:
        """`version` was published from this state: write it in a later pass (`write_if_due`),
        at the latest before the next close (`write`)."""
        self._unsaved = _Unsaved(version, params, adam, settings, time.monotonic())

    def write_if_due(self) -> None:
        """Write the unsaved state once STATE_WRITE_AFTER_S have passed since its publish."""
        unsaved = self._unsaved
        if unsaved is not None and time.monotonic() - unsaved.published_at >= STATE_WRITE_AFTER_S:
            self.write()

    def write(self) -> None:
        """Write the unsaved state now, if there is one."""
        unsaved, self._unsaved = self._unsaved, None
        if unsaved is not None:
            encoded = _encode(unsaved.params, unsaved.adam, unsaved.settings)
            self._store.store_optimizer_state(unsaved.version, encoded)

    def _redo_last_step(
        self,
        version: int,
        settings: RunSettings,
        kind: UnitKind,
        published: Params,
        lr: float | None,
        master: Params | None,
        previous: AdamState,
    ) -> tuple[Params, AdamState]:
        """Redo the last close's Adam step: the kept accepted results of the version before,
        summed in unit order, applied to its state. Adam's moments do not depend on the
        learning rate; fp32 master weights (when the published ones are rounded) are redone
        with the lr recorded in the published weights, and must round to them exactly."""
        closed = version - 1
        units = sorted(
            (u for u in self._store.version_units(closed) if u.copy == 0),
            key=lambda u: u.unit_index,
        )
        total = GradientSum()
        for unit in units:
            result = self._store.accepted_result(closed, unit.unit_index)
            if result is None:
                continue  # parked: the close left it out
            metrics = UnitMetrics(result.d_loss, result.g_loss, result.d_real, result.d_fake)
            total.add(self._result_grads(result.id), metrics, unit.sample_count)
        recorded = [m for m in self._store.metrics(closed) if m.version == closed]
        if recorded and recorded[0].units != total.units:
            raise StoreError(
                f"version {closed} was closed from {recorded[0].units} units but "
                f"{total.units} of their results are left: cannot rebuild its optimizer state"
            )
        if total.units == 0:  # an empty version: no step was taken
            return (published if master is None else master), previous
        params, adam = kind.apply(
            published if master is None else master,
            total.mean(),
            previous,
            settings,
            kind.step_lr(settings) if lr is None else lr,
        )
        if master is None:
            return published, adam
        rounded = quantize(params, settings.weights_precision)
        if any(not torch.equal(rounded[n], published[n]) for n in published):
            raise StoreError(
                f"redoing the step to version {version} does not give its published "
                "weights: the database is damaged; restore it from a backup"
            )
        return params, adam


def _encode(params: Params, adam: AdamState, settings: RunSettings) -> bytes:
    rounded = settings.weights_precision != "fp32"
    return encode_optimizer_state(adam, params if rounded else None)

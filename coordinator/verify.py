"""The coordinator's side of verification: hold results, settle units, issue copies.

Chosen once per run from its settings (`verification`: off, quorum or adaptive; see
core/verification.py). The loop hands every valid result to `Verifier.takes` and calls
`Verifier.poll` once per pass; it never asks which policy runs.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable

import torch

from core.config import RunSettings
from core.store import ResultRow, Store
from core.verification import (
    TOLERANCE,
    Candidate,
    Off,
    Policy,
    Relation,
    Settlement,
    policy_from_settings,
    relation,
    relative_difference,
    settle,
)

log = logging.getLogger(__name__)

POLL_EVERY_S = 0.5  # seconds between looks for held units that nobody is recomputing
AT_WORK_S = 600.0  # a trusted volunteer seen this recently is one that can confirm results

Decode = Callable[[bytes], dict[str, torch.Tensor]]


class Verifier:
    """Applies the run's verification policy to valid results; state lives in the database."""

    def __init__(
        self,
        store: Store,
        decode: Decode,
        settings: Callable[[], RunSettings],
        undo: Callable[[str, list[tuple[int, int]]], None],
    ) -> None:
        self.store = store
        self._decode = decode
        self._settings = settings
        # Called with a caught volunteer and the (version, result) of its results that counted
        # unchecked: the coordinator takes them out of the run (`Coordinator._undo`).
        self._undo = undo
        self._random = secrets.SystemRandom()  # spot-checks a volunteer cannot predict
        self.poll_every_s = POLL_EVERY_S
        self._polled_at = 0.0
        # Whether results may be held: at start (an earlier coordinator may have held some)
        # and after any pass with verification on. With it off, nothing is written per pass.
        self._maybe_held = True

    @property
    def policy(self) -> Policy:
        s = self._settings()
        return policy_from_settings(s.verification, s.trust_after, s.spot_check)

    def takes(self, row: ResultRow, grads: dict[str, torch.Tensor]) -> bool:
        """Take charge of a valid result: True when it is held, settled or refused here.

        False leaves it to the loop's own path (accept at once, or cross-check a late copy).
        """
        policy = self.policy
        if isinstance(policy, Off):
            return False
        identity, _ = self.store.worker_identity(row.worker_id)
        record = self.store.trust_record(identity)
        if record.quarantined:
            self.store.resolve_result(row.id, "rejected", f"{identity} is quarantined")
            return True
        if self.store.accepted_result(row.version, row.unit_index) is not None:
            return False
        held = self.store.held_results(row.version, row.unit_index)
        if not held and not policy.needs_second(record, self._random.random()):
            # A trusted volunteer, not picked for a spot-check: counts at once, and is
            # remembered in case the volunteer is caught later.
            self.store.count_unchecked(row, identity)
            return False
        self.store.hold_result(row)
        self._settle(row.version, row.unit_index, {row.id: grads})
        return True

    def poll(self, version: int) -> None:
        """Queue another computation of every held unit nobody is computing (rate-limited)."""
        now = time.monotonic()
        if now - self._polled_at < self.poll_every_s:
            return
        self._polled_at = now
        if isinstance(self.policy, Off):
            if self._maybe_held:  # switched off (or started so): what was held is judged now
                released = self.store.release_held()
                if released:
                    log.info("verification off: %d held result(s) judged as they are", released)
                self._maybe_held = False
            return
        self._maybe_held = True
        issued = self.store.issue_verification_copies(version)
        if issued:
            log.debug("verification copies of units %s of version %d", issued, version)

    def _settle(
        self, version: int, unit_index: int, known: dict[int, dict[str, torch.Tensor]]
    ) -> None:
        held = self.store.held_results(version, unit_index)
        if len(held) < 2:
            return  # `poll` asks somebody else for a computation
        settings = self._settings()
        candidates = [
            dataclasses.replace(c, trusted=self._trusted(c.identity, settings.trust_after))
            for c in held
        ]
        identities = sorted({c.identity for c in candidates})
        need_trusted = self.store.trusted_at_work(settings.trust_after, AT_WORK_S, identities)
        grads = {
            c.result_id: known.get(c.result_id)
            or self._decode(self.store.result_payload(c.result_id))
            for c in candidates
        }
        precision = settings.precision
        relations: dict[tuple[int, int], Relation] = {}

        def relate(i: int, j: int) -> Relation:
            a, b = sorted((candidates[i].result_id, candidates[j].result_id))
            if (a, b) not in relations:
                relations[a, b] = relation(grads[a], grads[b], precision)
            return relations[a, b]

        settlement = settle(candidates, relate, need_trusted=need_trusted)
        if settlement.accepted is None:
            if settlement.undecided:
                why = (
                    f"unit {unit_index}: {len(candidates)} volunteers computed it and no two "
                    "agree; parked, the version closes without it (several cheaters, or "
                    "hardware outside the tolerance: see docs/verification.md)"
                )
                log.warning("version %d %s", version, why)
                self.store.park_undecided(version, unit_index, why)
            return
        accepted = grads[settlement.accepted]
        reasons = _reasons(candidates, settlement, grads, accepted, precision)
        self.store.settle_unit(candidates, settlement, reasons)
        caught = {c.identity for c in candidates if c.result_id in settlement.caught}
        for result_id in settlement.caught:
            log.warning("result %d of unit %d: %s", result_id, unit_index, reasons[result_id])
        for identity in sorted(caught):
            reached = self.store.unchecked(identity)
            if reached:  # a trusted volunteer caught: what it gave unchecked is taken back
                self._undo(identity, reached)

    def _trusted(self, identity: str, trust_after: int) -> bool:
        record = self.store.trust_record(identity)
        return record.earned >= trust_after and not record.quarantined


def _reasons(
    candidates: list[Candidate],
    settlement: Settlement,
    grads: dict[int, dict[str, torch.Tensor]],
    accepted: dict[str, torch.Tensor],
    precision: str,
) -> dict[int, str]:
    """Why each caught or outvoted result does not count, in one line each."""
    who = ", ".join(sorted({c.identity for c in candidates if c.result_id in settlement.confirmed}))
    reasons = {}
    for result_id in (*settlement.caught, *settlement.outvoted):
        diff = relative_difference(grads[result_id], accepted)
        kind = "differs from" if result_id in settlement.caught else "is near but not equal to"
        reasons[result_id] = (
            f"result {result_id} {kind} what {who} computed (relative difference {diff:.3g}, "
            f"tolerance {TOLERANCE[precision]:g})"
        )
    return reasons

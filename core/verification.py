"""Verification policy: which results need a second computation, and how computations are settled.

Every unit is deterministic, so any result can be recomputed by another volunteer and compared:
bitwise when both ran on the same device class (the run fixes the thread count), within a
measured tolerance otherwise. Pure functions and small frozen types; the coordinator applies
them (`coordinator.verify`) and the store keeps the record.

Settling one unit's results (BOINC-style quorum, with bitwise majority):
- a value counts once two *different volunteer identities* computed it, one of them trusted
  once the run has trusted volunteers at work (then two new identities cannot confirm each
  other; three agreeing can);
- results more than the tolerance away from the value that counts are caught (quarantine);
- results inside the tolerance but not bitwise equal are outvoted, never counted and never
  punished (indistinguishable from another CPU's or GPU's rounding);
- two results that disagree, or agree only within tolerance on the same device class, ask for
  another computation, up to `MAX_RESULTS` per unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Relation = Literal["same", "close", "apart"]  # bitwise equal · within tolerance · beyond it
POLICIES = ("off", "quorum", "adaptive")
MAX_RESULTS = 5  # computations of one unit before it is left to the owner (an event says so)

# Relative L2 difference (|a - b| / max(|a|, |b|)) two honest computations of one unit may
# show, per payload precision. On the CPU with 1 and 2 intra-op threads one unit differs by
# about 3e-7 (fp32), 3e-5 (bf16) and 6e-6 (fp16); tests/core/test_verification.py measures it
# again and checks a margin of at least 10x. The bounds are wider still because CUDA was not
# measured (no GPU in that session) and its default TF32 convolutions round to 10 mantissa bits
# (about 5e-4 relative per product). An honest pair on the same device class agrees bitwise;
# these bound only pairs across device classes.
TOLERANCE: dict[str, float] = {
    "fp32": 1e-3,
    "bf16": 1e-2,
    "fp16": 5e-3,
}


class Policy(Protocol):
    """Which results must be confirmed by a second volunteer before they count."""

    @property
    def name(self) -> str: ...

    def needs_second(self, record: TrustRecord, draw: float) -> bool:
        """Whether a result of `record`'s volunteer is held for a second computation.

        `draw` is uniform in [0, 1), drawn by the coordinator after the result arrived (so a
        volunteer cannot know which of its results are spot-checked).
        """
        ...


@dataclass(frozen=True)
class TrustRecord:
    """What the run knows about one volunteer identity (login role, or worker name on SQLite)."""

    identity: str
    earned: int = 0  # units it computed first and another volunteer then confirmed
    verified: int = 0  # its results confirmed by another volunteer's computation
    outvoted: int = 0  # its results within tolerance but outvoted by a bitwise pair
    quarantined: bool = False
    reason: str | None = None  # why it was quarantined


@dataclass(frozen=True)
class Off:
    """Every valid result counts at once (a class or a demo where every worker is the owner's)."""

    name: str = "off"

    def needs_second(self, record: TrustRecord, draw: float) -> bool:
        return False


@dataclass(frozen=True)
class Quorum:
    """No result counts before a second volunteer's computation agrees (2x compute)."""

    name: str = "quorum"

    def needs_second(self, record: TrustRecord, draw: float) -> bool:
        return True


@dataclass(frozen=True)
class Adaptive:
    """New volunteers are confirmed until `trust_after` of their units were; then spot-checked.

    A trusted volunteer's unchecked results count at once; when it is caught, the run goes
    back to before the oldest of them and replays deterministically (`Coordinator._undo`).
    """

    trust_after: int  # confirmed units a volunteer needs before its results count unchecked
    spot_check: float  # share of a trusted volunteer's results still confirmed
    name: str = "adaptive"

    def needs_second(self, record: TrustRecord, draw: float) -> bool:
        return record.earned < self.trust_after or draw < self.spot_check


def policy_from_settings(name: str, trust_after: int, spot_check: float) -> Policy:
    """The policy a run's settings choose."""
    if name == "off":
        return Off()
    if name == "quorum":
        return Quorum()
    if name == "adaptive":
        return Adaptive(trust_after, spot_check)
    raise ValueError(f"verification must be one of {', '.join(POLICIES)}, not {name!r}")


# Comparing two computations ---------------------------------------------------------------
def relative_difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """|a - b| / max(|a|, |b|) over all tensors (global L2 norms, in float64)."""
    diff = sq_a = sq_b = 0.0
    for name, ta in a.items():
        x, y = ta.double(), b[name].double()
        diff += float((x - y).square().sum())
        sq_a += float(x.square().sum())
        sq_b += float(y.square().sum())
    scale = math.sqrt(max(sq_a, sq_b))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return math.sqrt(diff) / scale


def relation(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], precision: str
) -> Relation:
    """How two computations of one unit relate, for the run's payload precision."""
    if a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a):
        return "same"
    return "close" if relative_difference(a, b) <= TOLERANCE[precision] else "apart"


# Settling a unit ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One valid result of a unit awaiting a verdict, in submit order."""

    result_id: int
    identity: str  # the volunteer who computed it
    device: str  # the device class it was computed on (as its worker registered it)
    trusted: bool = False  # its volunteer has earned trust (TrustRecord.earned >= trust_after)


@dataclass(frozen=True)
class Settlement:
    """What the results of one unit decide."""

    accepted: int | None = None  # the result whose value counts (None: not decided yet)
    confirmed: tuple[int, ...] = ()  # results that computed exactly that value (credit)
    caught: tuple[int, ...] = ()  # results beyond the tolerance of it: their volunteers cheated
    outvoted: tuple[int, ...] = ()  # within tolerance but not bitwise: not counted, not punished
    need_copy: bool = False  # ask another volunteer for one more computation
    undecided: bool = False  # MAX_RESULTS computations and still no quorum


def settle(
    candidates: Sequence[Candidate],
    relate: Callable[[int, int], Relation],
    *,
    need_trusted: bool = False,
) -> Settlement:
    """Decide a unit from its results; `relate(i, j)` compares candidates i and j.

    A bitwise group of two or more identities wins (the group with most identities, the earlier
    one on a tie). Without one, a 'close' group of two or more identities on different device
    classes wins with its earliest result. With `need_trusted` (the run has trusted volunteers
    at work), a pair counts only with a trusted volunteer in it, so two new identities cannot
    confirm each other (three can). Anything else asks for another computation.
    """
    n = len(candidates)

    def quorate(group: Sequence[int]) -> bool:
        identities = _identities(candidates, group)
        trusted = not need_trusted or any(candidates[i].trusted for i in group)
        return identities >= 3 or (identities >= 2 and trusted)

    winner = _bitwise_group(candidates, relate, quorate) or _close_group(
        candidates, relate, quorate
    )
    if winner is None:
        if n >= MAX_RESULTS:
            return Settlement(undecided=True)
        return Settlement(need_copy=True)
    first = winner[0]
    confirmed = tuple(candidates[i].result_id for i in winner)
    caught: list[int] = []
    outvoted: list[int] = []
    for i in range(n):
        if i in winner:
            continue
        kind = relate(first, i)
        (outvoted if kind != "apart" else caught).append(candidates[i].result_id)
    return Settlement(
        accepted=candidates[first].result_id,
        confirmed=confirmed,
        caught=tuple(caught),
        outvoted=tuple(outvoted),
    )


def _identities(candidates: Sequence[Candidate], members: Sequence[int]) -> int:
    return len({candidates[i].identity for i in members})


def _bitwise_group(
    candidates: Sequence[Candidate],
    relate: Callable[[int, int], Relation],
    quorate: Callable[[Sequence[int]], bool],
) -> list[int] | None:
    groups: list[list[int]] = []
    for i in range(len(candidates)):
        for group in groups:
            if relate(group[0], i) == "same":
                group.append(i)
                break
        else:
            groups.append([i])
    counted = [g for g in groups if quorate(g)]
    if not counted:
        return None
    # Most identities wins; on a tie the group whose first result came first (stable max).
    return max(counted, key=lambda g: _identities(candidates, g))


def _close_group(
    candidates: Sequence[Candidate],
    relate: Callable[[int, int], Relation],
    quorate: Callable[[Sequence[int]], bool],
) -> list[int] | None:
    """Computations that agree within tolerance from different device classes."""
    for i in range(len(candidates)):
        group = [i] + [j for j in range(len(candidates)) if j != i and relate(i, j) == "close"]
        devices = {candidates[k].device for k in group}
        if quorate(group) and len(devices) >= 2:
            return sorted(group)
    return None

"""Where a class's version goes: from each publish to the volunteers computing, and back.

Read from the units' compute intervals (`crowd.py` records them by the wall clock) and the
closes' metrics rows (written in the publishing transaction, so their time is the publish's).
Per version: when the first, median and last volunteer started computing after the publish
(the weights download, decode and claim of all of them), when the median and last finished
their last unit (the gap between them: volunteers that took one unit more than others), and
from the last compute to the next publish (its upload, validation and the close).
"""

from __future__ import annotations

import collections
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Interval = tuple[int, float, float]  # volunteer, start, end (wall-clock seconds)


@dataclass(frozen=True)
class Timeline:
    versions: int
    period_s: float
    start_s: tuple[float, float, float]  # first, median, last volunteer computing
    done_s: tuple[float, float]  # median, last volunteer done with its last unit
    to_publish_s: float  # last compute end → next publish
    units_per_volunteer: dict[int, int]  # units a volunteer computed in a version → how often

    def describe(self) -> str:
        units = sorted(self.units_per_volunteer)
        spread = (
            " / ".join(map(str, units))
            + " units: "
            + " / ".join(str(self.units_per_volunteer[n]) for n in units)
        )
        first, median, last = self.start_s
        return (
            f"  timeline, medians over {self.versions} versions (s after the publish): period "
            f"{self.period_s:.2f}; volunteers computing from {first:.2f} / {median:.2f} / "
            f"{last:.2f} (first / median / last); done at {self.done_s[0]:.2f} / "
            f"{self.done_s[1]:.2f} (median / last); next publish {self.to_publish_s:.2f} after "
            f"the last compute; a volunteer's share of a version: {spread} times"
        )


def read_intervals(folder: Path) -> list[Interval]:
    rows = []
    for path in sorted(folder.glob("*.txt")):
        for line in path.read_text().splitlines():
            volunteer, start, end = line.split()
            rows.append((int(volunteer), float(start), float(end)))
    return rows


def timeline(publishes: Sequence[float], intervals: Sequence[Interval]) -> Timeline | None:
    """Medians over the versions between consecutive `publishes` (None if none computed)."""
    per_version = []
    counts: collections.Counter[int] = collections.Counter()
    for p0, p1 in itertools.pairwise(publishes):
        inside = [(v, s, e) for v, s, e in intervals if p0 <= s < p1]
        if not inside:
            continue
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for v, s, e in sorted(inside, key=lambda row: row[1]):
            first.setdefault(v, s - p0)
            last[v] = e - p0
        counts.update(collections.Counter(v for v, _, _ in inside).values())
        starts, ends = sorted(first.values()), sorted(last.values())
        per_version.append((p1 - p0, starts[0], statistics.median(starts), starts[-1],
                            statistics.median(ends), ends[-1], p1 - p0 - ends[-1]))  # fmt: skip
    if not per_version:
        return None
    med = [statistics.median(column) for column in zip(*per_version, strict=True)]
    return Timeline(len(per_version), med[0], (med[1], med[2], med[3]), (med[4], med[5]), med[6],
                    dict(counts))  # fmt: skip

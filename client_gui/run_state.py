"""What the app knows about the run, as plain data: one read of the database, and figures.

`RunReader` does the reading (blocking: the watcher calls it on a background thread) and
remembers how far it got, so each read fetches only what is new. The functions below turn
rows into what the Watch page shows; none of this touches Qt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.config import RunSettings
from core.store import (
    Credits,
    EventRow,
    MetricsRow,
    RunRow,
    SampleRow,
    Store,
    StoreError,
    WorkerRow,
    open_store,
)
from core.unit_kinds import unit_kind_text
from core.verification import TrustRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTIVE_WITHIN_S = 120.0  # a worker seen this recently counts as an active volunteer
HOUR_S = 3600.0
SAMPLES_PER_READ = 5  # newest sample grids fetched per read (each is a PNG of ~100 KB)
FIRST_SAMPLES = 100  # sample grids fetched on the first read: the history slider's reach
EVENTS_PER_READ = 200
RESCAN_VERSIONS = 50  # a version's quality figure is stored a little after it closes


@dataclass(frozen=True)
class RunSnapshot:
    """One read of the run: its row, and what is new since the previous read."""

    run: RunRow
    metrics: tuple[MetricsRow, ...]  # closed versions not seen before, oldest first
    samples: tuple[SampleRow, ...]  # sample grids not seen before, oldest first
    workers: tuple[WorkerRow, ...] | None  # None: this login may not read them
    events: tuple[EventRow, ...]  # log entries not seen before, oldest first
    read_at: float  # seconds since the epoch
    # Verification records this login may read (a volunteer: its own); None when refused.
    trust: tuple[TrustRecord, ...] | None = None
    # Units the run accepted in the last hour, its workers' and this login's; None: unreadable.
    credits: Credits | None = None


class RunReader:
    """Reads snapshots of one run database; use from one thread at a time."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: Store | None = None
        self._next_metrics = 0  # first version whose metrics are not seen yet
        self._last_sample = -1  # newest sample version seen
        self._last_event = 0  # newest event id seen
        self._swd_pending: set[int] = set()  # recent versions sent without a quality figure

    def read(self) -> RunSnapshot:
        """Everything new since the last read; StoreError when the database cannot be used."""
        store = self._connect()
        try:
            return self._read(store)
        except StoreError:
            self.close()  # reconnect next time
            raise

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None

    def _connect(self) -> Store:
        if self._store is None:
            self._store = open_store(self._url)
        return self._store

    def _read(self, store: Store) -> RunSnapshot:
        run = store.get_run()
        since = max(0, self._next_metrics - RESCAN_VERSIONS)
        metrics = [
            m
            for m in store.metrics(since_version=since)
            if m.version >= self._next_metrics
            or (m.swd is not None and m.version in self._swd_pending)
        ]
        for row in metrics:
            if row.swd is None:
                self._swd_pending.add(row.version)
            else:
                self._swd_pending.discard(row.version)
        self._swd_pending = {v for v in self._swd_pending if v >= since}
        if metrics:
            self._next_metrics = max(self._next_metrics, max(m.version for m in metrics) + 1)
        limit = FIRST_SAMPLES if self._last_sample < 0 else SAMPLES_PER_READ
        samples = sorted(
            (s for s in store.samples(limit) if s.version > self._last_sample),
            key=lambda s: s.version,
        )
        if samples:
            self._last_sample = samples[-1].version
        workers = _optional(store.workers)
        events = _optional(lambda: store.events(EVENTS_PER_READ, after_id=self._last_event)) or []
        if events:
            self._last_event = max(e.id for e in events)
        trust = _optional(store.trust_records)
        recent = _optional(lambda: [store.recent_credits(HOUR_S)])
        return RunSnapshot(
            trust=None if trust is None else tuple(trust),
            credits=recent[0] if recent else None,
            run=run,
            metrics=tuple(metrics),
            samples=tuple(samples),
            workers=None if workers is None else tuple(workers),
            events=tuple(sorted(events, key=lambda e: e.id)),
            read_at=time.time(),
        )


def _optional(read: Callable[[], list[T]]) -> list[T] | None:
    """A read a volunteer login may be refused (workers, events): None instead of failing."""
    try:
        return read()
    except StoreError as exc:
        log.debug("optional read refused: %s", exc)
        return None


@dataclass(frozen=True)
class RunSummary:
    """The run's status line on the Watch page."""

    name: str
    status: str  # 'active' | 'paused'
    version: int
    active_volunteers: int | None  # None when the workers cannot be read
    versions_per_hour: float | None  # None until two versions closed within the last hour
    problem: str | None = None  # what keeps the run from going on (the coordinator's alert)
    # Active workers beyond the run's units per version: they wait for every next version.
    waiting: int = 0
    units_per_version: int | None = None
    unit_kind: str = ""  # what a unit computes: gradients, or local steps (core.unit_kinds)


def summarize_run(
    run: RunRow,
    metrics: Sequence[MetricsRow],
    workers: Sequence[WorkerRow] | None,
    now: float,
) -> RunSummary:
    """Version, active volunteers and versions per hour from the rows seen so far."""
    recent = [m.created_at for m in metrics if m.created_at >= now - HOUR_S]
    rate = None
    if len(recent) >= 2 and recent[-1] > recent[0]:
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) * HOUR_S
    active = None
    waiting = 0
    stored = run.settings.get("num_workunits_per_update")
    units = stored if isinstance(stored, int) else RunSettings().num_workunits_per_update
    if workers is not None:
        present = [w for w in workers if now - w.last_seen < ACTIVE_WITHIN_S]
        active = len({w.name for w in present})
        waiting = max(0, len(present) - units)  # as `ganfriends-coordinator status` counts
    problem = None if run.alert is None else str(run.alert.get("message", ""))
    kind = unit_kind_text(RunSettings.from_dict(run.settings))
    return RunSummary(
        run.name, run.status, run.version, active, rate, problem, waiting, units, kind
    )


@dataclass(frozen=True)
class LeaderboardRow:
    """One volunteer on the leaderboard (all worker rows with the same name together)."""

    name: str
    units: int
    images: int
    compute_s: float
    is_me: bool
    verified: int = 0  # results another volunteer's computation confirmed


def leaderboard(workers: Iterable[WorkerRow], my_name: str) -> list[LeaderboardRow]:
    """Volunteers by images contributed, most first."""
    totals: dict[str, list[float]] = {}
    for worker in workers:
        total = totals.setdefault(worker.name, [0, 0, 0.0, 0])
        total[0] += worker.units
        total[1] += worker.images
        total[2] += worker.compute_s
        total[3] += worker.verified
    rows = [
        LeaderboardRow(name, int(t[0]), int(t[1]), t[2], name == my_name, int(t[3]))
        for name, t in totals.items()
    ]
    return sorted(rows, key=lambda r: (-r.images, -r.units, r.name))


@dataclass(frozen=True)
class Contribution:
    """What this volunteer gave, all from the database: whatever this app session saw, a
    restart loses nothing."""

    units: int
    images: int
    compute_s: float
    share_last_hour: float | None  # of the images the run accepted in the last hour; None
    # when it accepted none (or the database's record of it cannot be read)
    verified: int = 0  # results another volunteer's computation confirmed
    rejected: int = 0  # results the coordinator did not count (the log says why)
    standing: str | None = None  # where verification stands with this volunteer, for people
    refused: bool = False  # quarantined: nothing of this volunteer counts any more


def contribution(
    workers: Sequence[WorkerRow] | None,
    my_name: str,
    recent: Credits | None,
    trust: Sequence[TrustRecord] | None = None,
) -> Contribution:
    """Totals from the worker rows named `my_name`, as the leaderboard counts them (a rename
    renames the rows: item 4 of issue 16), and their share of the images the run accepted
    since `recent.since`, from the run's per-minute credits of those rows."""
    mine = [w for w in workers or () if w.name == my_name]
    verified = sum(w.verified for w in mine)
    rejected = sum(w.rejected for w in mine)
    standing, refused = _standing(mine, trust or (), verified)
    share = None
    if recent is not None and recent.run_images > 0:
        ids = {w.id for w in mine}
        my_recent = sum(c.images for c in recent.workers if c.worker_id in ids)
        share = min(1.0, my_recent / recent.run_images)
    return Contribution(
        sum(w.units for w in mine),
        sum(w.images for w in mine),
        sum(w.compute_s for w in mine),
        share,
        verified,
        rejected,
        standing,
        refused,
    )


def _standing(
    mine: Sequence[WorkerRow], trust: Sequence[TrustRecord], verified: int
) -> tuple[str | None, bool]:
    """What verification says of this volunteer's results, and whether they are refused."""
    identities = {w.volunteer or w.name for w in mine}
    records = [r for r in trust if r.identity in identities]
    for record in records:
        if record.quarantined:
            return (
                f"Your results no longer count: {record.reason}. Ask the run's owner.",
                True,
            )
    if not records and not verified:
        return None, False  # no verification in this run, or nothing settled yet
    outvoted = sum(r.outvoted for r in records)
    text = f"{verified:,} of your results were confirmed by another volunteer's computation"
    if outvoted:
        text += (
            f"; {outvoted:,} came out slightly different from two others that agreed exactly "
            "(another processor's rounding) and did not count"
        )
    return text + ".", False


def format_duration_s(seconds: float) -> str:
    """Compute time for people: '42 s', '12 min', '3 h 05 min'."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"

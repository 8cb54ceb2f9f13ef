"""Plain frozen values that go into and come out of the store (never live ORM objects)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.store.errors import StoreError

UNIT_STATUSES = ("pending", "leased", "submitted", "done", "parked", "cancelled")
RESULT_STATUSES = ("new", "accepted", "rejected", "crosscheck")
RUN_STATUSES = ("active", "paused")
# Store settings that must be > 0; the others may be 0 (backups at once, no extra checkpoints…).
_POSITIVE_SETTINGS = ("lease_s", "max_attempts", "keep_versions", "checkpoint_every")


class ShardLike(Protocol):
    """What the store needs of a dataset shard (`core.data.Shard` has these fields)."""

    @property
    def index(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def image_size(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class ShardData:
    """One stored dataset shard with its bytes (satisfies `ShardLike`)."""

    index: int  # 0, 1, 2 … in dataset order
    count: int  # images in this shard
    image_size: int  # pixels per side
    data: bytes  # uint8 (count, 3, image_size, image_size), C order
    sha256: str  # hex sha256 of data


@dataclass(frozen=True)
class ShardRow:
    """A stored shard's description, without its bytes."""

    index: int
    count: int
    image_size: int
    sha256: str


@dataclass(frozen=True)
class RunRow:
    """The run: its configuration, state and counters (treat the dicts as read-only)."""

    name: str
    status: str  # 'active' | 'paused'
    model_config: dict[str, object]
    settings: dict[str, object]
    dataset_size: int  # images in all shards
    image_size: int  # pixels per side
    version: int  # latest published version; its units are the ones handed out
    cursor: int  # next global unit index to designate
    created_at: float  # seconds since the epoch
    updated_at: float
    # What stops the run, if anything: {"kind", "message", "remedy", "since"} (None: nothing).
    alert: dict[str, object] | None = None


@dataclass(frozen=True)
class VersionRow:
    """A published model version, without its weight bytes."""

    version: int
    sha256: str  # hex sha256 of the safetensors weight bytes
    model_config: dict[str, object]
    is_checkpoint: bool
    created_at: float
    unit_start: int | None = None  # global index of its first designated unit (None: unknown)
    unit_count: int | None = None  # how many units were designated for it


@dataclass(frozen=True)
class UnitSpec:
    """A work unit to designate: its global index, its noise seed and its dataset samples."""

    unit_index: int  # global unit number (never reused within a run)
    seed: int  # seed of every noise draw of this unit
    sample_indices: Sequence[int]  # dataset image indices, in order


@dataclass(frozen=True)
class Lease:
    """A worker's claim on one copy of a unit; the token proves it on heartbeat and submit."""

    unit_id: int
    version: int
    unit_index: int
    copy: int  # 0 = the designated unit, 1.. = backup copies
    seed: int
    sample_indices: tuple[int, ...]
    token: str
    expires_at: float  # seconds since the epoch, by the run's clock (core.store.clock)
    worker_id: int
    # This process's time.monotonic() when the lease was granted or last renewed: with
    # lease_s, how long its holder may keep retrying, whatever the holder's wall clock says.
    renewed_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class UnitRow:
    """One copy of a work unit as stored (sample indices left out)."""

    id: int
    version: int
    unit_index: int
    copy: int
    seed: int
    sample_count: int
    status: str  # one of UNIT_STATUSES
    worker_id: int | None
    attempts: int  # claims so far (a release gives one back)
    leased_at: float | None
    lease_expires_at: float | None
    created_at: float


@dataclass(frozen=True)
class UnitCounts:
    """Units of one version counted once each by their best copy (done beats everything)."""

    pending: int
    leased: int
    submitted: int
    done: int
    parked: int
    cancelled: int

    @property
    def total(self) -> int:
        """Distinct unit indices of the version."""
        return (
            self.pending + self.leased + self.submitted + self.done + self.parked + self.cancelled
        )


@dataclass(frozen=True)
class ResultRow:
    """A submitted result without its payload; losses are NaN when the worker sent NaN."""

    id: int
    unit_id: int
    version: int
    unit_index: int
    worker_id: int
    precision: str  # 'fp32' | 'bf16' | 'fp16', as the worker declared
    sample_count: int  # the unit's real sample count (the coordinator's word)
    claimed_samples: int  # the worker's word, kept only for the record
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float
    compute_s: float  # seconds the worker spent computing
    status: str  # one of RESULT_STATUSES
    reason: str | None  # why it was rejected, if it was
    submitted_at: float


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker and what it has contributed."""

    id: int
    name: str
    hostname: str
    device: str
    created_at: float
    last_seen: float
    state: str
    units: int  # accepted (or cross-checked) units
    images: int  # images in those units, counted by the coordinator
    compute_s: float  # seconds of compute in those units
    rejected: int  # results rejected
    volunteer: str | None = None  # the volunteer identity it acts for (login role, or its name)
    verified: int = 0  # its results another volunteer's computation confirmed


@dataclass(frozen=True)
class WorkerCredit:
    """One worker's accepted units over a stretch of time (core.store.credits)."""

    worker_id: int
    units: int
    images: int


@dataclass(frozen=True)
class Credits:
    """Accepted units since `since`: each worker's this login may read, and the whole run's."""

    since: float  # seconds since the epoch, the run's clock
    workers: tuple[WorkerCredit, ...]
    run_units: int
    run_images: int


@dataclass(frozen=True)
class MetricsRow:
    """What closing one version measured; losses are NaN when they were NaN."""

    version: int  # the version whose close produced this row
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float
    images: int
    units: int
    parked_units: int
    close_s: float  # seconds the close took
    swd: float | None  # sliced Wasserstein distance, None until computed
    created_at: float


@dataclass(frozen=True)
class SampleRow:
    """A rendered sample grid of one version."""

    version: int
    png: bytes
    swd: float | None
    created_at: float


@dataclass(frozen=True)
class EventRow:
    """One entry of the run's event log."""

    id: int
    at: float
    kind: str
    worker_id: int | None
    version: int | None
    message: str


@dataclass(frozen=True)
class StoreSettings:
    """The run settings the store itself acts on, read from the run's settings dict."""

    lease_s: float = 60.0  # seconds a claim holds without a heartbeat
    max_attempts: int = 3  # claims of a unit copy before it is parked
    backup_after_s: float = 30.0  # seconds a lease runs before an idle worker may get a copy
    keep_versions: int = 3  # newest model versions kept
    keep_checkpoints: int = 3  # newest checkpoint versions kept beyond those
    checkpoint_every: int = 100  # every Nth version is a checkpoint
    keep_samples: int = 100  # newest sample grids kept

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> StoreSettings:
        """Pick the store's keys out of a run's settings, with defaults for missing ones."""
        values: dict[str, float | int] = {}
        for name, default in (
            ("lease_s", cls.lease_s),
            ("max_attempts", cls.max_attempts),
            ("backup_after_s", cls.backup_after_s),
            ("keep_versions", cls.keep_versions),
            ("keep_checkpoints", cls.keep_checkpoints),
            ("checkpoint_every", cls.checkpoint_every),
            ("keep_samples", cls.keep_samples),
        ):
            raw = settings.get(name, default)
            kind = type(default)
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise StoreError(
                    f"run setting {name} must be a number, not {raw!r}; fix it with set"
                )
            value = kind(raw)
            if value < 0 or (value == 0 and name in _POSITIVE_SETTINGS):
                raise StoreError(
                    f"run setting {name} must be positive, not {raw!r}; fix it with set"
                )
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]

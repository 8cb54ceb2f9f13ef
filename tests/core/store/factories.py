"""Test-data factories for the store tests: fake shards, units, runs and a movable clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import insert

from core.codec import sha256_hex
from core.store import Store, UnitSpec
from core.store.rows import ShardData
from core.store.schema import work_units

START = 1_000_000.0  # fake epoch seconds
UNIT_SIZE = 4  # samples per fake unit
METRICS = {"d_loss": 0.7, "g_loss": 1.3, "d_real": 0.6, "d_fake": 0.4}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_shards(count: int = 3, images: int = 8) -> list[ShardData]:
    """Fake shards: the store never decodes them (but checks their sha256)."""
    return [
        ShardData(
            index=i,
            count=images,
            image_size=32,
            data=bytes([i]) * 10,
            sha256=sha256_hex(bytes([i]) * 10),
        )
        for i in range(count)
    ]


def make_units(start: int, count: int) -> list[UnitSpec]:
    """`count` consecutive units from global index `start`."""
    return [
        UnitSpec(
            unit_index=i,
            seed=1000 + i,
            sample_indices=[i * UNIT_SIZE + k for k in range(UNIT_SIZE)],
        )
        for i in range(start, start + count)
    ]


def add_finished_units(store: Store, count: int, first_index: int = 1000) -> None:
    """`count` done units of version 0 from `first_index` on: a long-running queue's history."""
    finished = [
        {
            "version": 0,
            "unit_index": first_index + i,
            "copy": 0,
            "seed": i,
            "sample_indices": b"\0\0\0\0",
            "sample_count": 1,
            "status": "done",
            "created_at": 0.0,
        }
        for i in range(count)
    ]
    with store.session() as conn:
        conn.execute(insert(work_units), finished)


def create_test_run(store: Store, units: int = 3, **settings: object) -> None:
    """A run with `units` units in version 0 and the given settings."""
    store.create_run(
        name="test",
        model_config={"image_size": 32},
        settings=settings,
        shards=make_shards(),
        weights=b"w0",
        weights_sha256=sha256_hex(b"w0"),
        optimizer_state=b"adam0",
        first_units=make_units(0, units),
    )


def close_metrics(units: int, parked: int = 0) -> dict[str, float | int | None]:
    """Metrics as the coordinator would pass them to close_version."""
    return {
        **METRICS,
        "images": units * UNIT_SIZE,
        "units": units,
        "parked_units": parked,
        "close_s": 0.01,
    }


def close(store: Store, version: int, next_units: int = 3, closed_units: int = 3) -> None:
    """Close `version` (of `closed_units` units), designating `next_units` new units."""
    cursor = store.get_run().cursor
    store.close_version(
        version,
        weights=f"w{version + 1}".encode(),
        weights_sha256=sha256_hex(f"w{version + 1}".encode()),
        model_config={"image_size": 32},
        optimizer_state=f"adam{version + 1}".encode(),
        metrics=close_metrics(closed_units),
        next_units=make_units(cursor, next_units),
        new_cursor=cursor + next_units,
    )


def work_one(store: Store, worker_id: int, payload: bytes = b"x" * 10) -> int:
    """Claim one unit, submit it, and return the result id."""
    lease = store.claim(worker_id)
    assert lease is not None
    return store.submit(lease, payload, "fp32", UNIT_SIZE, METRICS, 0.5)


@dataclass
class Tally:
    """What a stand-in coordinator (`coordinate`) counted over a run."""

    accepted: Counter[tuple[int, int]] = field(default_factory=Counter)  # (version, unit_index)
    crosschecks: int = 0  # results that arrived after their unit's accepted one
    done: int = 0  # units of the versions closed so far
    version: int = 0  # the open version


def coordinate(store: Store, tally: Tally, units_per_version: int) -> bool:
    """One pass of a coordinator without the math: accept every new result, close full versions.

    The batch of results is judged in one transaction; a version closes once all its units are
    done, designating as many new ones. Returns whether there was anything to do.
    """
    new = store.new_results(500)
    with store.session():
        for result in new:
            if store.resolve_result(result.id, "accepted") == "accepted":
                tally.accepted[(result.version, result.unit_index)] += 1
            else:
                tally.crosschecks += 1
    if store.unit_counts(tally.version).done < units_per_version:
        return bool(new)
    close(store, tally.version, next_units=units_per_version, closed_units=units_per_version)
    tally.done += units_per_version
    tally.version += 1
    return True


def create_queue_run(store: Store, units_per_version: int) -> None:
    """A run for exactly-once tests: no lease expiries, no backups, so each unit is claimed once
    by a correct claim."""
    create_test_run(store, units=units_per_version, lease_s=600.0, backup_after_s=1e9)

"""The run's lifecycle SQL: create a run, close a version (publish the next), retention."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from core.store import credits
from core.store.binary_copy import Field, insert_bytes
from core.store.errors import NoRun, RunExists, StoreError
from core.store.queue import add_event, nan_to_null, pack_indices
from core.store.rows import RunRow, ShardLike, StoreSettings, UnitSpec
from core.store.schema import (
    dataset_shards,
    events,
    held_results,
    metrics,
    model_versions,
    optimizer_states,
    results,
    run,
    samples,
    unchecked_results,
    work_units,
)

log = logging.getLogger(__name__)

KEEP_EVENTS = 10_000  # newest event-log entries kept
METRICS_KEYS = (
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "images",
    "units",
    "parked_units",
    "close_s",
)


def to_json(value: Mapping[str, object]) -> str:
    """A JSON object as stored (sorted keys, so equal dicts store equal text)."""
    return json.dumps(dict(value), sort_keys=True)


def from_json(text: str) -> dict[str, object]:
    """Inverse of `to_json`."""
    value = json.loads(text)
    assert isinstance(value, dict), "stored JSON columns always hold objects"
    return value


def run_row(row: Any) -> RunRow:
    """The stored run as a frozen value."""
    return RunRow(
        name=row.name,
        status=row.status,
        model_config=from_json(row.model_config),
        settings=from_json(row.settings),
        dataset_size=row.dataset_size,
        image_size=row.image_size,
        version=row.version,
        cursor=row.cursor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        alert=from_json(row.alert) if row.alert else None,
    )


def read_run(conn: Connection, *, for_update: bool = False) -> RunRow:
    """The run, or NoRun; `for_update` locks its row (PostgreSQL) for a read-modify-write."""
    query = select(run).where(run.c.id == 1)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NoRun()
    return run_row(row)


def insert_units(conn: Connection, version: int, specs: Sequence[UnitSpec], now: float) -> None:
    """Designate `specs` as version `version`'s units (copy 0, pending).

    The version's row records which units they are: `insert_version` writes that with the
    row, `record_units` into a row that already exists (a rollback).
    """
    if not specs:
        return
    conn.execute(
        insert(work_units),
        [
            {
                "version": version,
                "unit_index": spec.unit_index,
                "copy": 0,
                "seed": spec.seed,
                "sample_indices": pack_indices(spec.sample_indices),
                "sample_count": len(spec.sample_indices),
                "status": "pending",
                "attempts": 0,
                "created_at": now,
            }
            for spec in specs
        ],
    )


def record_units(conn: Connection, version: int, specs: Sequence[UnitSpec]) -> None:
    """Record in `version`'s existing row which units it has, so that a rollback can
    designate the same units again.

    An UPDATE, which SQLite carries out by rewriting the whole row with its weights: only
    for a version whose units change after it was published.
    """
    if not specs:
        return
    conn.execute(
        update(model_versions)
        .where(model_versions.c.version == version)
        .values(**_unit_range(specs))
    )


def _unit_range(specs: Sequence[UnitSpec]) -> dict[str, int]:
    """The unit_start and unit_count columns of a version with the units `specs` (none: {})."""
    if not specs:
        return {}
    return {"unit_start": specs[0].unit_index, "unit_count": len(specs)}


def insert_version(
    conn: Connection,
    version: int,
    weights: bytes,
    weights_sha256: str,
    model_config: Mapping[str, object],
    settings: StoreSettings,
    now: float,
    units: Sequence[UnitSpec],
) -> None:
    """Publish the weights of `version` (a checkpoint every `checkpoint_every` versions) and
    record which `units` it has (a rollback designates the same units again)."""
    # Binary COPY on PostgreSQL: psycopg2 would inline a bytea parameter as hex text in the
    # statement, twice its size to build, send and parse (seconds for the 64×64 model).
    row: dict[str, Field] = {
        "version": version,
        "sha256": weights_sha256,
        "model_config": to_json(model_config),
        "is_checkpoint": version % settings.checkpoint_every == 0,
        "created_at": float(now),
    }
    # With the row: an UPDATE afterwards would make SQLite rewrite the whole row, weights too.
    row.update(_unit_range(units))
    insert_bytes(conn, model_versions, row, "weights", weights)


def insert_optimizer_state(conn: Connection, version: int, state: bytes) -> None:
    """Store the Adam state of `version`'s weights with its sha256."""
    row: dict[str, Field] = {"version": version, "sha256": hashlib.sha256(state).hexdigest()}
    insert_bytes(conn, optimizer_states, row, "state", state)


def create_run(
    conn: Connection,
    now: float,
    name: str,
    model_config: Mapping[str, object],
    settings: Mapping[str, object],
    shards: Iterable[ShardLike],
    weights: bytes,
    weights_sha256: str,
    optimizer: bytes,
    first_units: Sequence[UnitSpec] | Callable[[int], Sequence[UnitSpec]],
) -> RunRow:
    """Write a whole new run (caller's transaction: all of it or nothing).

    `first_units` may be a function of the dataset size, which is only known once the
    shards (a stream) are stored.
    """
    if conn.execute(select(run.c.id)).first() is not None:
        raise RunExists()
    store_settings = StoreSettings.from_settings(settings)
    dataset_size, image_size = 0, None
    for shard in shards:
        if image_size is not None and shard.image_size != image_size:
            raise StoreError(
                f"shard {shard.index} has {shard.image_size}px images but earlier shards have "
                f"{image_size}px; ingest the dataset again at one size"
            )
        image_size = shard.image_size
        described: dict[str, Field] = {
            "idx": shard.index,
            "count": shard.count,
            "image_size": shard.image_size,
            "sha256": shard.sha256,
        }
        insert_bytes(conn, dataset_shards, described, "data", shard.data)
        dataset_size += shard.count
    if image_size is None:
        raise StoreError("a run needs a dataset with at least one shard of images")
    units = first_units(dataset_size) if callable(first_units) else first_units
    conn.execute(
        insert(run).values(
            id=1,
            name=name,
            status="active",
            model_config=to_json(model_config),
            settings=to_json(settings),
            dataset_size=dataset_size,
            image_size=image_size,
            version=0,
            cursor=len(units),
            created_at=now,
            updated_at=now,
        )
    )
    insert_version(conn, 0, weights, weights_sha256, model_config, store_settings, now, units)
    insert_optimizer_state(conn, 0, optimizer)
    insert_units(conn, 0, units, now)
    add_event(conn, now, "run", f"run {name!r} created with {dataset_size} images", version=0)
    return read_run(conn)


def close_version(
    conn: Connection,
    now: float,
    version: int,
    weights: bytes,
    weights_sha256: str,
    model_config: Mapping[str, object],
    optimizer: bytes,
    metrics_values: Mapping[str, float | int | None],
    next_units: Sequence[UnitSpec],
    new_cursor: int,
) -> None:
    """Publish version+1 with its optimizer state in the caller's one transaction."""
    publish_version(
        conn,
        now,
        version,
        weights,
        weights_sha256,
        model_config,
        metrics_values,
        next_units,
        new_cursor,
    )
    store_optimizer_state(conn, now, version + 1, optimizer)


def publish_version(
    conn: Connection,
    now: float,
    version: int,
    weights: bytes,
    weights_sha256: str,
    model_config: Mapping[str, object],
    metrics_values: Mapping[str, float | int | None],
    next_units: Sequence[UnitSpec],
    new_cursor: int,
) -> None:
    """Publish version+1 and retire `version` (caller's transaction: all of it or nothing).

    The optimizer state of version+1 is not part of it: `store_optimizer_state` writes it
    afterwards. Until then `version`'s accepted results stay, so that a coordinator that dies in
    between rebuilds the state from them (Adam's moments do not depend on the learning rate).
    Retention (`prune`) waits for that write too.
    """
    current = read_run(conn, for_update=True)
    if current.version != version:
        raise StoreError(
            f"cannot close version {version}: the run is at version {current.version}, so it "
            "was already closed; reload the run and carry on from there"
        )
    missing = [key for key in METRICS_KEYS if key not in metrics_values]
    if missing:
        raise StoreError(f"close_version metrics need {', '.join(METRICS_KEYS)}; missing {missing}")
    settings = StoreSettings.from_settings(current.settings)
    published = version + 1
    insert_version(
        conn, published, weights, weights_sha256, model_config, settings, now, next_units
    )
    conn.execute(
        update(run)
        .where(run.c.id == 1)
        .values(version=published, cursor=new_cursor, updated_at=now)
    )
    # Leftover copies die here, so late heartbeats and submits of them get LeaseLost.
    conn.execute(
        update(work_units)
        .where(work_units.c.version == version, work_units.c.status.not_in(("done", "parked")))
        .values(status="cancelled", lease_expires_at=None)
    )
    # Results that were not accepted can go now (small rows: payloads go when tidy runs).
    conn.execute(
        delete(results).where(results.c.version == version, results.c.status != "accepted")
    )
    conn.execute(delete(held_results).where(held_results.c.version == version))
    _insert_metrics(conn, version, metrics_values, now)
    insert_units(conn, published, next_units, now)
    parked = int(metrics_values["parked_units"] or 0)
    add_event(
        conn,
        now,
        "published",
        f"version {published} published from {metrics_values['units']} units"
        + (f" ({parked} parked units left out)" if parked else ""),
        version=published,
    )
    log.info("published version %d", published)


def store_optimizer_state(conn: Connection, now: float, version: int, optimizer: bytes) -> None:
    """Write the optimizer state of published `version`, drop the results it was made from,
    and apply retention (`prune`): not in the publishing transaction, which workers wait for."""
    current = read_run(conn, for_update=True)
    if current.version != version:
        raise StoreError(
            f"cannot store the optimizer state of version {version}: the run is at version "
            f"{current.version}"
        )
    insert_optimizer_state(conn, version, optimizer)
    conn.execute(delete(results).where(results.c.version == version - 1))
    prune(conn, now, version - 1, StoreSettings.from_settings(current.settings))


def _insert_metrics(
    conn: Connection, version: int, values: Mapping[str, float | int | None], now: float
) -> None:
    def number(key: str) -> float:
        value = values[key]
        if value is None:
            raise StoreError(f"close_version metric {key} must be a number, not None")
        return float(value)

    swd = values.get("swd")
    conn.execute(
        insert(metrics).values(
            version=version,
            d_loss=nan_to_null(number("d_loss")),
            g_loss=nan_to_null(number("g_loss")),
            d_real=nan_to_null(number("d_real")),
            d_fake=nan_to_null(number("d_fake")),
            images=int(number("images")),
            units=int(number("units")),
            parked_units=int(number("parked_units")),
            close_s=number("close_s"),
            swd=None if swd is None else nan_to_null(float(swd)),
            created_at=now,
        )
    )


def prune(conn: Connection, now: float, closed: int, settings: StoreSettings) -> None:
    """Retention: keep the database's size independent of how many versions were run."""
    kept = conn.execute(
        select(model_versions.c.version, model_versions.c.is_checkpoint).order_by(
            model_versions.c.version.desc()
        )
    ).all()
    checkpoints = [row.version for row in kept if row.is_checkpoint]
    keep = {row.version for row in kept[: settings.keep_versions]}
    keep |= set(checkpoints[: settings.keep_checkpoints])
    # What counted unchecked before the oldest kept version can no longer be gone back from
    # (the best version below is not one to undo a cheater's work to: it may be long ago).
    oldest = min(keep, default=0)
    conn.execute(delete(unchecked_results).where(unchecked_results.c.version < oldest))
    # The best version so far stays, weights, optimizer state and grid: a GAN can collapse
    # after hours (benchmarks/README.md, "Time to quality"), and `rollback` can then return.
    best = best_quality(conn)
    if best is not None:
        keep.add(best[0])
    stale = [row.version for row in kept if row.version not in keep]
    if stale:
        conn.execute(delete(model_versions).where(model_versions.c.version.in_(stale)))
    # Finished units of older versions; parked ones stay as a record of poison units.
    conn.execute(
        delete(work_units).where(
            work_units.c.version < closed, work_units.c.status.in_(("done", "cancelled"))
        )
    )
    _keep_newest(conn, samples.c.version, settings.keep_samples, also=best[0] if best else None)
    _keep_newest(conn, events.c.id, KEEP_EVENTS)
    credits.prune(conn, now)


def best_quality(conn: Connection) -> tuple[int, float] | None:
    """The version with the lowest quality figure (SWD) so far, and that figure."""
    row = conn.execute(
        select(metrics.c.version, metrics.c.swd)
        .where(metrics.c.swd.is_not(None))
        .order_by(metrics.c.swd, metrics.c.version)  # PostgreSQL sorts NaN after every number
        .limit(1)
    ).first()
    if row is None or math.isnan(row.swd):
        return None
    # A metrics row is a close: version v's close published v + 1, whose figure it holds.
    return row.version + 1, float(row.swd)


def _keep_newest(conn: Connection, key: Any, keep: int, also: int | None = None) -> None:
    """Delete the rows of key's table beyond the `keep` with the largest key, except `also`."""
    cutoff = conn.execute(select(key).order_by(key.desc()).offset(keep).limit(1)).scalar()
    if cutoff is not None:
        spared = [] if also is None else [key != also]
        conn.execute(delete(key.table).where(key <= cutoff, *spared))


def count_rows(conn: Connection, table: Any) -> int:
    """Rows in a table (for status displays and tests)."""
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def rollback(
    conn: Connection, now: float, version: int, units: Sequence[UnitSpec], reason: str
) -> None:
    """Go back to `version` (caller's transaction: all of it or nothing); see Store.rollback."""
    current = read_run(conn, for_update=True)
    if not 0 <= version <= current.version:
        raise StoreError(
            f"cannot roll back to version {version}: the run is at version {current.version}"
        )
    if not units:
        raise StoreError(f"rolling back to version {version} needs its units")
    for table, key in (
        (model_versions, model_versions.c.version),
        (optimizer_states, optimizer_states.c.version),
        (samples, samples.c.version),
    ):
        conn.execute(delete(table).where(key > version))
    conn.execute(delete(metrics).where(metrics.c.version >= version))
    conn.execute(delete(results).where(results.c.version >= version))  # payloads: tidy
    conn.execute(delete(unchecked_results).where(unchecked_results.c.version >= version))
    conn.execute(delete(held_results).where(held_results.c.version >= version))
    conn.execute(delete(work_units).where(work_units.c.version >= version))
    conn.execute(
        update(run)
        .where(run.c.id == 1)
        .values(
            version=version,
            cursor=units[-1].unit_index + 1,
            alert=None,
            updated_at=now,
        )
    )
    record_units(conn, version, units)
    insert_units(conn, version, units, now)
    add_event(
        conn,
        now,
        "rollback",
        f"rolled back from version {current.version} to version {version} ({reason}); its "
        "units are computed again",
        version=version,
    )
    log.warning("rolled back from version %d to %d: %s", current.version, version, reason)

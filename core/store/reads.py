"""Read-only queries (versions, shards, units, results, workers, samples, metrics, events)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select

from core.store.binary_copy import read_bytes, read_rows
from core.store.errors import DamagedData, NoRun, StoreError, damaged_shard
from core.store.housekeeping import READABLE
from core.store.queue import METRIC_KEYS, null_to_nan
from core.store.rows import (
    UNIT_STATUSES,
    EventRow,
    MetricsRow,
    ResultRow,
    SampleRow,
    ShardData,
    ShardRow,
    UnitCounts,
    UnitRow,
    VersionRow,
    WorkerRow,
)
from core.store.runs import from_json
from core.store.schema import (
    dataset_shards,
    events,
    metrics,
    model_versions,
    optimizer_states,
    result_payloads,
    results,
    run,
    samples,
    work_units,
    workers,
)

# The best status of any copy decides a unit's status in UnitCounts (done beats all).
STATUS_RANK = ("done", "submitted", "leased", "pending", "parked", "cancelled")


DAMAGED = "the stored bytes are damaged (disk, memory or a hand edit), not lost in transit"
OWNER_REMEDY = (
    "the run's coordinator rebuilds it from a kept version when it reads it; if it cannot, "
    "its owner rolls the run back (ganfriends-coordinator rollback --to VERSION)"
)


def verified(data: bytes, sha256: str | None, what: str, table: str, key: int) -> bytes:
    """`data` if its sha256 is `sha256`; DamagedData naming the row otherwise."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() == sha256:
        return data
    raise DamagedData(
        f"{what} (row {key} of {table}) fails its sha256 check: {DAMAGED}; {OWNER_REMEDY}",
        table,
        key,
    )


def version_weights(conn: Connection, version: int) -> tuple[bytes, str, dict[str, object]]:
    """(safetensors bytes, sha256, model config) of a kept version; DamagedData if damaged."""
    columns = [model_versions.c.sha256, model_versions.c.model_config, model_versions.c.weights]
    rows = read_rows(conn, columns, model_versions.c.version == version)  # one query
    if not rows:
        raise StoreError(
            f"version {version} is not stored (never published or pruned by retention); "
            "fetch the latest version instead"
        )
    ((sha256, model_config, weights),) = rows
    verified(weights, sha256, f"the weights of version {version}", "model_versions", version)
    return weights, sha256, from_json(model_config)


def versions(conn: Connection) -> list[VersionRow]:
    """The kept model versions, oldest first (no weight bytes)."""
    columns = [c for c in model_versions.c if c.name != "weights"]
    rows = conn.execute(select(*columns).order_by(model_versions.c.version)).all()
    return [
        VersionRow(
            version=row.version,
            sha256=row.sha256,
            model_config=from_json(row.model_config),
            is_checkpoint=bool(row.is_checkpoint),
            created_at=row.created_at,
            unit_start=row.unit_start,
            unit_count=row.unit_count,
        )
        for row in rows
    ]


def shard_index(conn: Connection) -> list[ShardRow]:
    """Every dataset shard, in index order, without data."""
    rows = conn.execute(
        select(
            dataset_shards.c.idx,
            dataset_shards.c.count,
            dataset_shards.c.image_size,
            dataset_shards.c.sha256,
        ).order_by(dataset_shards.c.idx)
    ).all()
    # Row.count is the tuple method, so that column is read through the mapping.
    return [ShardRow(r.idx, r._mapping["count"], r.image_size, r.sha256) for r in rows]


def shard(conn: Connection, index: int) -> ShardData:
    """One dataset shard with its bytes."""
    where = dataset_shards.c.idx == index
    columns = [c for c in dataset_shards.c if c.name != "data"]
    row = conn.execute(select(*columns).where(where)).first()
    data = None if row is None else read_bytes(conn, dataset_shards.c.data, where)
    if row is None or data is None:
        raise StoreError(f"no dataset shard {index}; shard_index() lists the stored ones")
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise damaged_shard(index, f"fails its sha256 check: {DAMAGED}")
    return ShardData(row.idx, row._mapping["count"], row.image_size, data, row.sha256)


def results_where(conn: Connection, *where: Any, limit: int | None = None) -> list[ResultRow]:
    """Results matching `where`, oldest first, with their unit's sample count."""
    rows = conn.execute(
        select(*results.c, work_units.c.sample_count)
        .join(work_units, work_units.c.id == results.c.unit_id)
        .where(*where)
        .order_by(results.c.id)
        .limit(limit)
    ).all()
    return [ResultRow(**_nan_losses(row._asdict())) for row in rows]


def optimizer_state(conn: Connection) -> tuple[int, bytes]:
    """(version, Adam state bytes) of the latest published version."""
    version = conn.execute(select(run.c.version).where(run.c.id == 1)).scalar()
    if version is None:
        raise NoRun()
    return int(version), optimizer_state_of(conn, int(version))


def optimizer_state_of(conn: Connection, version: int) -> bytes:
    """The Adam state stored with `version`'s weights; DamagedData if damaged."""
    columns = [optimizer_states.c.sha256, optimizer_states.c.state]
    rows = read_rows(conn, columns, optimizer_states.c.version == version)  # one query
    if not rows:
        raise StoreError(f"the optimizer state of version {version} is missing from the database")
    ((sha256, state),) = rows
    what = f"the optimizer state of version {version}"
    return verified(state, sha256, what, "optimizer_states", version)


def newest_optimizer_state(conn: Connection) -> tuple[int, bytes]:
    """(version, Adam state bytes) of the newest stored optimizer state; DamagedData if
    damaged."""
    version = conn.execute(select(func.max(optimizer_states.c.version))).scalar()
    if version is None:
        raise StoreError("the run has no optimizer state in the database")
    return int(version), optimizer_state_of(conn, int(version))


def result_payload(conn: Connection, result_id: int) -> bytes:
    """The payload of a result (StoreError once it is resolved and dropped)."""
    payload = result_payloads_of(conn, [result_id])[result_id]
    if isinstance(payload, DamagedData):
        raise payload
    return payload


def result_payloads_of(
    conn: Connection, result_ids: Sequence[int]
) -> dict[int, bytes | DamagedData]:
    """The payloads of results, each checked against its sha256 (DamagedData in its place if
    it fails), in one query; StoreError if one was resolved and dropped."""
    # The join: a payload row can outlive its result's verdict until the next tidy.
    rows = read_rows(
        conn,
        [result_payloads.c.result_id, result_payloads.c.sha256, result_payloads.c.payload],
        result_payloads.c.result_id.in_(result_ids),
        results.c.id == result_payloads.c.result_id,
        results.c.status.in_(READABLE),
    )
    found: dict[int, bytes | DamagedData] = {}
    for result_id, sha256, payload in rows:
        what = f"the payload of result {result_id}"
        try:
            found[result_id] = verified(payload, sha256, what, "result_payloads", result_id)
        except DamagedData as exc:
            found[result_id] = exc
    for result_id in result_ids:
        if result_id not in found:
            raise StoreError(
                f"result {result_id} has no payload: it was rejected, cross-checked or its "
                "version was closed"
            )
    return found


def accepted_ids(conn: Connection, version: int) -> list[tuple[int, int, int]]:
    """(result id, unit_index, sample_count) of a version's accepted results, in unit order."""
    rows = conn.execute(
        select(results.c.id, results.c.unit_index, work_units.c.sample_count)
        .join(work_units, work_units.c.id == results.c.unit_id)
        .where(results.c.version == version, results.c.status == "accepted")
        .order_by(results.c.unit_index)
    ).all()
    return [(row.id, row.unit_index, row.sample_count) for row in rows]


def version_units(conn: Connection, version: int) -> list[UnitRow]:
    """Every copy of every unit of a version, by (unit_index, copy)."""
    columns = [c for c in work_units.c if c.name not in ("sample_indices", "lease_token")]
    rows = conn.execute(
        select(*columns)
        .where(work_units.c.version == version)
        .order_by(work_units.c.unit_index, work_units.c.copy)
    ).all()
    return [UnitRow(**row._asdict()) for row in rows]


def unit_counts(conn: Connection, version: int) -> UnitCounts:
    """Distinct units of a version counted by the best status of their copies."""
    rank = case({status: i for i, status in enumerate(STATUS_RANK)}, value=work_units.c.status)
    best = conn.execute(
        select(func.min(rank))
        .where(work_units.c.version == version)
        .group_by(work_units.c.unit_index)
    ).scalars()
    counts = dict.fromkeys(UNIT_STATUSES, 0)
    for i in best:
        counts[STATUS_RANK[i]] += 1
    return UnitCounts(**counts)


def worker_rows(conn: Connection) -> list[WorkerRow]:
    """Every registered worker, by id."""
    rows = conn.execute(select(workers).order_by(workers.c.id)).all()
    return [WorkerRow(**row._asdict()) for row in rows]


def sample_rows(conn: Connection, limit: int) -> list[SampleRow]:
    """Up to `limit` sample grids, newest first."""
    rows = conn.execute(select(samples).order_by(samples.c.version.desc()).limit(limit)).all()
    return [SampleRow(r.version, bytes(r.png), r.swd, r.created_at) for r in rows]


def metrics_rows(conn: Connection, since_version: int) -> list[MetricsRow]:
    """Metrics of every closed version >= since_version, oldest first."""
    rows = conn.execute(
        select(metrics).where(metrics.c.version >= since_version).order_by(metrics.c.version)
    ).all()
    return [MetricsRow(**_nan_losses(row._asdict())) for row in rows]


def event_rows(conn: Connection, limit: int, after_id: int) -> list[EventRow]:
    """Up to `limit` newest events with id > after_id, newest first."""
    rows = conn.execute(
        select(events).where(events.c.id > after_id).order_by(events.c.id.desc()).limit(limit)
    ).all()
    return [EventRow(**row._asdict()) for row in rows]


def _nan_losses(values: dict[str, Any]) -> dict[str, Any]:
    for key in METRIC_KEYS:
        values[key] = null_to_nan(values[key])
    return values

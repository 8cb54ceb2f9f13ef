"""The admin console: read a run's state and change it, as plain data the CLI prints."""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coordinator import volunteers
from core.cache import ShardCache
from core.codec import decode_named
from core.config import RunSettings
from core.export import save_model
from core.model import ModelConfig, gan_from_parameters
from core.paths import cache_dir
from core.quality import quality_std
from core.schedule import units_per_epoch
from core.shards import ShardFetcher
from core.store import Store
from core.training import calibrate_gan
from core.unit_kinds import unit_kind_text
from core.verification import TrustRecord

ACTIVE_WITHIN_S = 120.0  # a worker seen this recently counts as active
REPEAT_OFFENDER = 3  # sessions the watchdog ended before `status` calls a volunteer one
MAX_WEIGHTS_BYTES = 4 * 1024**3


def run_status(store: Store) -> dict[str, Any]:
    """Version, epoch, throughput, quality and workers of the run."""
    run = store.get_run()
    settings = RunSettings.from_dict(run.settings)
    metrics = store.metrics(since_version=max(0, run.version - 20))
    images_per_s = None
    if len(metrics) >= 2:
        span = metrics[-1].created_at - metrics[0].created_at
        if span > 0:
            images_per_s = sum(m.images for m in metrics[1:]) / span
    latest_sample = store.latest_sample()
    swd = latest_sample.swd if latest_sample is not None else None
    best = store.best_quality()  # kept by retention: `rollback` returns to it after a collapse
    now = store.now()  # the run's clock: a host minutes off changes nothing
    workers = store.workers()
    counts = store.unit_counts(run.version)
    active = sum(1 for w in workers if now - w.last_seen < ACTIVE_WITHIN_S)
    return {
        "name": run.name,
        "status": run.status,
        "version": run.version,
        # Seconds since the newest version was published (None for version 0): a run that
        # stopped shows its last images/s still, and this says how old that figure is.
        "version_age_s": None if not metrics else max(0.0, now - metrics[-1].created_at),
        # The epoch being trained: units of closed versions, i.e. before this version's units.
        "epoch": (run.cursor - counts.total)
        // units_per_epoch(run.dataset_size, settings.images_per_work_unit),
        "dataset_images": run.dataset_size,
        "images_per_s": images_per_s,
        "quality_swd": swd,
        "quality_swd_std": quality_std(swd) if swd is not None else None,  # noise, not progress
        "quality_best": None if best is None else {"version": best[0], "swd": best[1]},
        "last_losses": {"d_loss": metrics[-1].d_loss, "g_loss": metrics[-1].g_loss}
        if metrics
        else None,
        "units": {
            "pending": counts.pending,
            "leased": counts.leased,
            "submitted": counts.submitted,
            "done": counts.done,
            "parked": counts.parked,
        },
        "workers_active": active,
        "units_per_version": settings.num_workunits_per_update,
        "unit_kind": unit_kind_text(settings),
        **pool_advice(active, settings.num_workunits_per_update),
        "workers_stalled": sum(
            1
            for w in workers
            if now - w.last_seen >= ACTIVE_WITHIN_S and w.state not in ("stopped",)
        ),
        "rejected_results": sum(w.rejected for w in workers),
        "sessions_ended": _offenders(store),
        "verification": verification_summary(store, settings),
        "alert": run.alert,  # what stops the run, with the remedy; None when nothing does
    }


def verification_summary(store: Store, settings: RunSettings) -> dict[str, Any]:
    """The run's verification policy, what waits for a second computation, who was caught."""
    rows = store.trust_rows()
    trusted = [
        r.record.identity
        for r in rows
        if r.record.earned >= settings.trust_after and not r.record.quarantined
    ]
    return {
        "policy": settings.verification,
        "text": verification_text(settings),
        "held_results": store.held_count(),
        "trusted_volunteers": len(trusted),
        "verified_results": sum(w.verified for w in store.workers()),
        "quarantined": [
            {
                "identity": r.record.identity,
                "reason": r.record.reason,
                "since": r.quarantined_at,
                "remedy": r.remedy,
            }
            for r in rows
            if r.record.quarantined
        ],
    }


def verification_text(settings: RunSettings) -> str:
    """The verification policy, for people."""
    if settings.verification == "off":
        return "off (every valid result counts at once)"
    if settings.verification == "quorum":
        return "quorum (every result counts once another volunteer's computation agrees)"
    return (
        f"adaptive (a volunteer's results are confirmed by another volunteer until "
        f"{settings.trust_after} were; then {settings.spot_check:.0%} are spot-checked)"
    )


def trust_text(record: TrustRecord, settings: RunSettings) -> str:
    """One volunteer identity's standing, for people."""
    if record.quarantined:
        return "quarantined (the reason: `status`)"
    if settings.verification == "off":
        return "not verified (verification off)"
    if settings.verification == "adaptive" and record.earned >= settings.trust_after:
        return "trusted (spot-checked)"
    if settings.verification == "quorum":
        return "every result confirmed"
    return f"new ({record.earned} of {settings.trust_after} units confirmed)"


def pool_advice(active: int, units_per_version: int) -> dict[str, Any]:
    """How many active workers wait for work every version, and the `set` that would help.

    A version has exactly `units_per_version` units, so at most that many workers compute at
    once; the others wait until the next version is published.
    """
    waiting = max(0, active - units_per_version)
    advice = None
    if waiting:
        advice = (
            f"{waiting} of {active} active workers wait for work every version "
            f"(a version has {units_per_version} units): "
            f"`ganfriends-coordinator set num_workunits_per_update={active}` lets all of them "
            "compute (a larger batch per step; see the README, 'Sizing a run for a class')"
        )
    return {"workers_waiting": waiting, "advice": advice}


def waiting_advice(store: Store) -> str | None:
    """`pool_advice`'s sentence for the run as it is now, or None when nobody waits."""
    now = store.now()  # the run's clock: a host minutes off changes nothing
    active = sum(1 for w in store.workers() if now - w.last_seen < ACTIVE_WITHIN_S)
    units = RunSettings.from_dict(store.get_run().settings).num_workunits_per_update
    return pool_advice(active, units)["advice"]


def _offenders(store: Store) -> list[dict[str, Any]]:
    """Volunteers (not revoked) whose sessions the watchdog ended, most first."""
    if store.dialect != "postgresql":
        return []
    rows = [
        v for v in volunteers.list_volunteers(store) if v.sessions_ended and v.revoked_at is None
    ]
    return [
        {
            "name": v.name,
            "sessions_ended": v.sessions_ended,
            "repeat_offender": v.sessions_ended >= REPEAT_OFFENDER,
            "last_why": v.last_ended_why,
            "revoke": f"ganfriends-coordinator revoke {v.name}",
        }
        for v in sorted(rows, key=lambda v: -v.sessions_ended)
    ]


def worker_table(store: Store) -> list[dict[str, Any]]:
    now = store.now()  # the run's clock: a host minutes off changes nothing
    settings = RunSettings.from_dict(store.get_run().settings)
    records = {r.record.identity: r.record for r in store.trust_rows()}
    return [
        {
            "id": w.id,
            "name": w.name,
            "host": w.hostname,
            "device": w.device,
            "state": w.state,
            "seen_s_ago": round(now - w.last_seen, 1),
            "units": w.units,
            "images": w.images,
            "compute_s": round(w.compute_s, 1),
            "rejected": w.rejected,
            "verified": w.verified,  # results another volunteer's computation confirmed
            "volunteer": w.volunteer or w.name,
            "trust": trust_text(
                records.get(w.volunteer or w.name, TrustRecord(w.volunteer or w.name)), settings
            ),
        }
        for w in store.workers()
    ]


def volunteer_table(store: Store) -> list[dict[str, Any]]:
    """Every invited volunteer as plain data (times in seconds since the epoch)."""
    invited = volunteers.list_volunteers(store)  # first: it says when there can be none
    settings = RunSettings.from_dict(store.get_run().settings)
    records = {r.record.identity: r.record for r in store.trust_rows()}
    now = store.now()  # the server's clock, which PostgreSQL checks VALID UNTIL with
    return [
        {
            "name": v.name,
            "role": v.role,
            "created_at": v.created_at,
            "expires_at": v.expires_at,
            "revoked_at": v.revoked_at,
            "status": _volunteer_status(v, now),
            "sessions": v.sessions,
            "workers": v.workers,
            "units": v.units,
            "images": v.images,
            "rejected": v.rejected,
            "ended": v.sessions_ended,  # sessions the watchdog ended
            "last_ended_why": v.last_ended_why,
            "verified": v.verified,
            "trust": trust_text(records.get(v.role, TrustRecord(v.role)), settings),
        }
        for v in invited
    ]


def readable_volunteer(row: dict[str, Any]) -> dict[str, Any]:
    """A `volunteer_table` row for people: dates instead of epoch seconds."""

    def day(seconds: float | None) -> str:
        return "—" if seconds is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))

    hidden = ("created_at", "expires_at", "revoked_at", "last_ended_why")
    shown = {k: v for k, v in row.items() if k not in hidden}
    return {
        "name": shown.pop("name"),
        "role": shown.pop("role"),
        "created": day(row["created_at"]),
        "expires": day(row["expires_at"]),
        **shown,
    }


def _volunteer_status(v: volunteers.VolunteerRow, now: float) -> str:
    if v.revoked_at is not None:
        return "revoked"
    if v.expires_at is not None and v.expires_at < now:
        return "expired"
    return "active"


def set_settings(store: Store, changes: dict[str, str]) -> RunSettings:
    """Validate `KEY=VALUE` changes (live keys only) and store them; they apply at the next close."""
    current = RunSettings.from_dict(store.get_run().settings)
    updated = current.with_changes(changes)
    store.update_settings({k: getattr(updated, k) for k in changes})
    store.add_event(
        "settings", "changed " + ", ".join(f"{k}={getattr(updated, k)}" for k in changes)
    )
    return updated


class OutputError(Exception):
    """A file or folder the owner named cannot be written; the message says what to do."""


@contextmanager
def writing_to(out: Path) -> Iterator[None]:
    """Raise an OSError from the block as an `OutputError` that names `out` and the remedy."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename and Path(exc.filename) in out.parents:  # e.g. a file, not a folder
            reason = f"{reason}: {exc.filename}"
        if exc.errno == errno.ENOSPC:
            remedy = f"free space on {out.absolute().parent}"
        else:
            remedy = "give a path in a folder you can write to"
        raise OutputError(f"cannot write {out}: {reason}; {remedy}") from exc


def export_model(store: Store, out: Path) -> int:
    """Write the latest version, BatchNorm calibrated, to `out`; returns the version."""
    run = store.get_run()
    settings = RunSettings.from_dict(run.settings)
    weights, _, model_config = store.version_weights(run.version)
    params, _ = decode_named(weights, MAX_WEIGHTS_BYTES)
    gan = gan_from_parameters(ModelConfig.from_dict(model_config), params)
    fetcher = ShardFetcher(store, ShardCache(cache_dir() / "coordinator"))
    count = min(512, run.dataset_size)
    calibrate_gan(
        gan, fetcher.images(list(range(count))), seed=settings.seed, batch_size=settings.batch_size
    )
    with writing_to(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        save_model(gan, out, version=run.version)
    return run.version


def write_samples(store: Store, out: Path) -> list[Path]:
    """Every stored sample grid as `version_NNNNNN.png`, plus `latest.png`."""
    samples = store.samples(limit=10_000)
    written = []
    with writing_to(out):
        out.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            path = out / f"version_{sample.version:06d}.png"
            path.write_bytes(sample.png)
            written.append(path)
        if samples:
            latest = max(samples, key=lambda s: s.version)
            (out / "latest.png").write_bytes(latest.png)
    return written

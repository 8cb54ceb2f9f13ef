"""Why a version does not close: the coordinator's diagnosis, shown by `status` and the app.

Called when no result has been accepted for a while. It names the cause it can see in the
database (damaged data, no workers, every result refused, parked units) with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.store import Store
from core.store.errors import SHARD_REMEDY

STALL_S = 30.0  # no accepted result for this long, with work to do, is looked into
CHECK_EVERY_S = 10.0  # how often the coordinator looks (so a stall is shown within a minute)
WORKER_SEEN_S = 60.0  # a worker seen this recently (or within two leases) counts as present
DAMAGE_STATE = "error: damaged data"  # how a worker reports damage (core.worker)


@dataclass(frozen=True)
class Problem:
    kind: str  # damage | no_workers | rejected | workers_failing | parked | idle
    message: str
    remedy: str


def diagnose(store: Store, version: int, lease_s: float, stalled_s: float) -> Problem | None:
    """What keeps `version` from closing, or None when nothing does (paused, or computing)."""
    run = store.get_run()
    if run.status == "paused":
        return None  # the owner's choice, shown as such
    counts = store.unit_counts(version)
    waiting = (
        f"version {version} has had no accepted result for {stalled_s:.0f} s "
        f"({counts.pending} pending, {counts.leased} leased, {counts.parked} parked units)"
    )
    now = store.now()  # the run's clock: a host minutes off changes nothing
    present = [w for w in store.workers() if now - w.last_seen < max(2 * lease_s, WORKER_SEEN_S)]
    damaged = sorted({w.state for w in present if w.state.startswith(DAMAGE_STATE)})
    if damaged:
        return Problem(
            "damage",
            f"{waiting}: workers report damaged data in the database ({'; '.join(damaged)})",
            SHARD_REMEDY
            if any("dataset_shards" in state for state in damaged)
            else "the coordinator rebuilds damaged weights and optimizer states from a kept "
            "version; if this stays, check the database server's disk and restore a backup",
        )
    if not present:
        return Problem(
            "no_workers",
            f"{waiting}: no worker has been seen for {WORKER_SEEN_S:.0f} s",
            "start workers (ganfriends-worker --db URL, or the ganfriends app) or invite "
            "volunteers (ganfriends-coordinator invite NAME)",
        )
    refused = [
        e.message
        for e in store.events(50)
        if e.kind == "rejected" and e.version == version and now - e.at < stalled_s
    ]
    if refused:
        return Problem(
            "rejected",
            f"{waiting}: every result since was rejected, e.g. {refused[0]}",
            "see `ganfriends-coordinator workers`: a worker of another release, a broken "
            "device or a hostile volunteer sends results that cannot count; update, stop or "
            "revoke it",
        )
    failing = [w for w in present if w.state.startswith("error")]
    if failing and len(failing) == len(present):
        return Problem(
            "workers_failing",
            f"{waiting}: every worker reports an error",
            "see the workers' logs (ganfriends-worker prints the reason)",
        )
    if counts.leased:
        return None  # being computed: slow units are not a stall
    if counts.pending == 0 and counts.parked:
        return Problem(
            "parked",
            f"{waiting}: its remaining units are parked",
            "the version closes without them; if it does not, restart the coordinator",
        )
    return Problem(
        "idle",
        f"{waiting}: {len(present)} worker(s) present, none computing",
        "see `ganfriends-coordinator workers` for what they do",
    )

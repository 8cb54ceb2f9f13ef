"""A class of N volunteers against one coordinator and one PostgreSQL server, on this machine.

Real: the PostgreSQL server (a throwaway cluster), the coordinator (`ganfriends-coordinator
serve`, its own process, `served.py`), the worker engine of every volunteer (claim, weights,
shards, heartbeats, upload by binary COPY into the volunteer upload view), each volunteer
logged in with its own invited role, the network between them (veth pairs into namespaces,
shaped with tc), every byte. Simulated: only the compute of a unit (`standin.py`: it sleeps as
long as the device profile says and returns a valid, deterministic result of the real shapes).
The volunteers run as threads of a child process (`crowd.py`, `--processes`) on this machine's
2 cores, so their own decoding and encoding competes with the coordinator and the server here;
on real computers it would not.

    python -m benchmarks.class_sim [--volunteers 1,4,8,16,32] [--profile laptop]
        [--network lan|home|none] [--image-size 64] [--versions 4] [--units-per-volunteer 1]
        [--preset class] [--processes 1] [--quality-minutes 60] [--quality-images 131072]
        [--class-quality-images N] [--quality-dataset synthetic|emoji] [--curves-only]
        [--set KEY=VALUE[,KEY=VALUE]] [--server-log FILE] [--json]

Per N it prints useful images/s (images in versions closed within the window ÷ its seconds),
scaling efficiency (÷ N × the same profile's single-volunteer run, or its pure compute rate
when N = 1 is not measured), the volunteers' busy share (median, p10), the coordinator's CPU
share, the server's egress in MB/s and the close latency p50; then where its versions' time
went (`timeline.py`): the volunteers' start after each publish, their last compute, the path
from there to the next publish, and how many units each volunteer took per version.

Then, after all classes (`time_to_quality.py`), the time-to-quality speedup: the simulated
seconds one computer of the profile alone (synchronous, the demo's settings, at its pure
compute rate) needs to reach the best quality it reaches within the horizon, ÷ the seconds the
class needs for the same figure, printed with its two factors: the class's images/s over the
baseline's, divided by the class's images to the figure over the baseline's (with 32
volunteers at efficiency 0.8, 16x allows the class at most 1.6x the images). Quality per
training image comes from the reference trainer
with each run's exact settings (cached with the trainer's state, so a longer curve continues a
shorter one; `--curves-only` computes them without a class, the baseline's and the classes' in
parallel); seconds per image from the class's measured useful images/s. The horizon is
`--quality-minutes` unless `--quality-images` (images per baseline curve) makes it shorter, as
it does by default: one laptop computes ~1,700-2,600 images/s (the cached `cpu1` measurement ×
3.2), the reference trainer ~700 on one core here. A class's curve is `--class-quality-images`
long. Computed for the 32×32 presets only (null otherwise).

`--json` ends with one line: {"runs": [{"volunteers": N, "profile": …, "network": …,
"useful_images_per_s": …, "scaling_efficiency": …, "busy_share_median": …, "close_s_p50": …,
"egress_mb_per_s": …, "time_to_quality_speedup": … (null: not computed, or the class does not
reach the figure within its curve; then "time_to_quality_speedup_below" bounds it from above),
"time_to_quality_speedup_below": …, "quality_horizon_minutes": …}]}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.class_sim import network, profiles, timeline
from benchmarks.class_sim import time_to_quality as ttq
from benchmarks.class_sim.crowd import Crowd, VolunteerSpec
from benchmarks.class_sim.served import ServedCoordinator
from benchmarks.demo_settings import first_reached, variant
from coordinator import presets, volunteers
from coordinator.demo import DEMO_MODEL
from coordinator.runs import RunPlan, create_run
from core.config import RunSettings
from core.model import ModelConfig
from core.store import Store, open_store

OWNER_PASSWORD = "class-sim-owner"
WARMUP_VERSIONS = 2  # shards and first weights downloads happen before the window
DATASET_IMAGES = 4096
# --server-log: what the throwaway server then writes to its log (log_lock_waits names the
# lock, its holder and its queue once a wait passes deadlock_timeout).
LOCK_LOGGING = {"log_lock_waits": "on", "deadlock_timeout": "100ms", "log_checkpoints": "on",
                "log_autovacuum_min_duration": 0, "log_line_prefix": "'%m [%p] '"}  # fmt: skip
QUALITY_IMAGES = 131_072  # images per quality curve: ~3 minutes of the reference trainer here


def owned_database(server: Any) -> tuple[str, str]:
    """A database owned by a CREATEROLE role, hardened as docs/deployment.md says."""
    name = server.create_database()
    owner = f"{name}_owner"
    su = server.connect()
    with su.cursor() as cur:
        cur.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE PASSWORD %s', (OWNER_PASSWORD,))
        cur.execute(f'ALTER DATABASE "{name}" OWNER TO "{owner}"')
        grant = getattr(volunteers, "parameter_grant_sql", None)
        if grant is not None:
            cur.execute(grant(owner))
    su.close()
    su = server.connect(name)
    with su.cursor() as cur:
        cur.execute(volunteers.HARDENING_SQL)
    su.close()
    return name, owner


def listen_everywhere(server: Any) -> None:
    """Let the throwaway cluster accept the namespaces' addresses (10.77/16, 10.78/16)."""
    root = server.data_dir.parent
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(
        hba.read_text() + "host all all 10.77.0.0/16 scram-sha-256\n"
        "host all all 10.78.0.0/16 scram-sha-256\n"
    )
    options = server._options(root).replace("listen_addresses=127.0.0.1", "listen_addresses=*")
    server.pg_ctl("restart", "-w", "-m", "fast", "-t", "60", "-l", str(root / "server.log"),
                  "-o", options)  # fmt: skip


def run_config(args: argparse.Namespace, n: int) -> tuple[ModelConfig, RunSettings]:
    """The model and settings of the run that `n` volunteers train."""
    if args.preset:  # the preset's model and unit kind; units per version follow N as below
        model, base = presets.preset(args.preset)
    else:
        model = ModelConfig(args.image_size, 100, 64, 64)
        base = RunSettings(images_per_work_unit=args.images_per_unit, inner_steps=args.inner_steps)
    settings = dataclasses.replace(
        base,
        num_workunits_per_update=n * args.units_per_volunteer,
        sample_every=10**6,
        lease_s=300.0,
        backup_after_s=600.0,
        weights_precision=args.weights_precision or base.weights_precision,
        precision=args.precision or base.precision,
    )
    for change in args.set:  # after the rest: `--set num_workunits_per_update=…` wins
        settings = variant(settings, change)[1]
    return model, settings


def simulate(server: Any, args: argparse.Namespace, n: int, tmp: Path) -> dict[str, Any]:
    """One class of `n` volunteers; its figures."""
    model, settings = run_config(args, n)
    name, owner = owned_database(server)
    owner_url = server.database_url(name, owner, OWNER_PASSWORD)
    store = open_store(owner_url, create=True)
    create_run(store, RunPlan("class", model, settings, ("synthetic", DATASET_IMAGES)),
               progress=False)  # fmt: skip
    mix = profiles.parse_mix(args.profile, n)
    intervals = tmp / name / "intervals"
    intervals.mkdir(parents=True)
    with network.topology(args.network, n) as topo:
        specs = []
        for i in range(n):
            invite = volunteers.invite(store, f"v{i}", host=network.server_address(topo, i),
                                       port=server.port, sslmode="disable")  # fmt: skip
            seconds = profiles.seconds_per_image(mix[i], model)
            specs.append(VolunteerSpec(i, invite.url(), topo.namespaces[i], seconds, settings,
                                       tmp / name / f"cache{i}", intervals))  # fmt: skip
        coordinator = ServedCoordinator(owner_url, tmp / name / "coordinator")
        crowd = Crowd(specs, args.processes)
        crowd.start()
        try:
            result = _measure(args, n, coordinator, topo, crowd)
        finally:
            crowd.stop()
            coordinator.stop()
    store.dispose()
    result["timeline"] = timeline.timeline(
        result.pop("publishes"), timeline.read_intervals(intervals)
    )
    return {**result, "profile": args.profile, "network": args.network,
            "ideal_images_per_s": sum(1 / profiles.seconds_per_image(p, model) for p in mix)}  # fmt: skip


def _measure(args, n, coordinator: ServedCoordinator, topo, crowd: Crowd) -> dict[str, Any]:
    deadline = time.monotonic() + args.timeout
    first = WARMUP_VERSIONS
    while coordinator.version() < first:
        _check(deadline, coordinator, crowd)
    start, cpu0, egress0 = time.monotonic(), coordinator.cpu_s(), topo.egress_bytes()
    computed0 = _compute_seconds(coordinator.store)
    first = coordinator.version()
    while coordinator.version() < first + args.versions:
        _check(deadline, coordinator, crowd)
    end, cpu1, egress1 = time.monotonic(), coordinator.cpu_s(), topo.egress_bytes()
    computed1 = _compute_seconds(coordinator.store)
    window = coordinator.closes(first, coordinator.version())
    images = sum(m.images for m in window)
    # Busy: the compute seconds each worker reported with its submits (`workers --json`'s
    # compute_s, as the demo's figure) during the window, ÷ the window.
    shares = sorted(
        (computed1.get(name, 0.0) - computed0.get(name, 0.0)) / (end - start) for name in computed1
    )
    seconds = end - start
    return {
        "volunteers": n,
        "useful_images_per_s": images / seconds,
        "busy_share_median": statistics.median(shares),
        "busy_share_p10": shares[int(0.1 * (len(shares) - 1))],
        "coordinator_cpu_share": (cpu1 - cpu0) / seconds,
        "egress_mb_per_s": (egress1 - egress0) / seconds / 1e6,
        # The coordinator's stored close_s: last accept → the publishing transaction begins.
        "close_s_p50": statistics.median(m.close_s for m in window),
        "seconds_per_version": seconds / max(1, len(window)),
        "publishes": [m.created_at for m in window],
        "versions": len(window),
    }


def _compute_seconds(store: Store) -> dict[str, float]:
    return {w.name: w.compute_s for w in store.workers()}


def _check(deadline: float, coordinator: ServedCoordinator, crowd: Crowd) -> None:
    if time.monotonic() > deadline:
        raise SystemExit(f"timed out at version {coordinator.version()}")
    coordinator.check()
    crowd.check()
    time.sleep(0.05)


def add_time_to_quality(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    """Each run's time_to_quality_speedup and quality_horizon_minutes (None: not computed)."""
    for row in runs:
        row.update(time_to_quality_speedup=None, time_to_quality_speedup_below=None,
                   quality_horizon_minutes=None)  # fmt: skip
    curves = quality_curves(args, [row["volunteers"] for row in runs])
    if curves is None:
        return
    rate, images, baseline, others = curves
    minutes = images / rate / 60
    alone = profiles.parse_mix(args.profile, 1)[0]
    print(f"time to quality ({args.quality_dataset} set): one {alone} alone, synchronous "
          f"(the demo's settings) at its pure compute rate, {rate:,.0f} images/s, for "
          f"{minutes:.2f} minutes ({images:,} images; {args.quality_minutes:g} asked), against "
          "each class at its useful images/s", flush=True)  # fmt: skip
    for row, other in zip(runs, others, strict=True):
        result = ttq.compare(
            baseline, rate, other, row["useful_images_per_s"], args.quality_minutes
        )
        row.update(time_to_quality_speedup=result.speedup, quality_horizon_minutes=minutes,
                   time_to_quality_speedup_below=result.speedup_below)  # fmt: skip
        print(f"  N={row['volunteers']}: {result.describe()} (the class's best "
              f"{min(f for _, f in other):.1f} in {other[-1][0]:,} images)", flush=True)  # fmt: skip


def quality_curves(
    args: argparse.Namespace, counts: Sequence[int]
) -> tuple[float, int, ttq.Curve, list[ttq.Curve]] | None:
    """The baseline's rate, horizon and curve, and each class's curve (computed in parallel
    where not cached); None where the field is not computed."""
    model, _ = run_config(args, 1)
    if args.quality_images == 0:
        return None
    if model != DEMO_MODEL:
        print("time_to_quality_speedup: not computed: its reference-trainer curves are for the "
              "32×32 demo model (--preset class or demo); 64×64 curves take hours here")  # fmt: skip
        return None
    alone = profiles.parse_mix(args.profile, 1)[0]
    rate = 1 / profiles.seconds_per_image(alone, model)  # pure compute: favours the baseline
    images = ttq.horizon_images(rate, args.quality_minutes, args.quality_images)
    class_images = args.class_quality_images or args.quality_images
    jobs = [(ttq.BASELINE_SETTINGS, images)]
    jobs += [(run_config(args, n)[1], class_images) for n in counts]
    baseline, *others = ttq.quality_curves(model, jobs, args.quality_dataset)
    return rate, images, baseline, others


def print_curves(args: argparse.Namespace, counts: Sequence[int]) -> int:
    """--curves-only: how far each curve goes, its best and last figures, its figure at
    doubling marks from 131k images, and (the classes) the images it needed for its best
    figure so far at each mark against one computer alone."""
    curves = quality_curves(args, counts)
    if curves is None:
        return 1
    _, _, baseline, others = curves
    for name, curve in [("one computer alone", baseline),
                        *((f"N={n}", c) for n, c in zip(counts, others, strict=True))]:  # fmt: skip
        if not curve:
            print(f"{name}: no figure yet (one every {ttq.CURVE_EVERY:,} images)")
            continue
        best = min(curve, key=lambda point: point[1])
        print(f"{name}: {len(curve)} figures to {curve[-1][0]:,} images, best {best[1]:.1f} "
              f"after {best[0]:,}, last {curve[-1][1]:.1f}")  # fmt: skip
        print("  " + ", ".join(f"{mark / 1e6:.2f}M: {figure:.0f} (best {low:.1f})"
                               for mark, figure, low in ttq.at_marks(curve)))  # fmt: skip
        if curve is not baseline:
            print("  " + images_ratios(curve, baseline))
    return 0


def images_ratios(curve: ttq.Curve, baseline: ttq.Curve) -> str:
    """At each doubling mark, the images the class needed for its best figure so far ÷ the
    images one computer alone needed for it (the speedup's second factor, by figure)."""
    parts = []
    for _, _, low in ttq.at_marks(curve):
        alone, needed = first_reached(baseline, low), first_reached(curve, low)
        assert needed is not None  # its own best so far
        ratio = "not in the curve alone" if alone is None else f"{needed / alone:.1f}x"
        parts.append(f"{low:.0f} after {needed / 1e6:.2f}M: {ratio}")
    return "images to that figure ÷ one computer alone's: " + ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.class_sim",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--volunteers", default="1,4,8,16,32")
    parser.add_argument("--profile", default="laptop", help="cpu1, laptop, gpu or a mix "
                        "such as laptop:24,gpu:8")  # fmt: skip
    parser.add_argument("--network", default="lan", choices=network.NETWORKS)
    parser.add_argument("--image-size", type=int, default=64, choices=(32, 64))
    parser.add_argument("--versions", type=int, default=4, help="measured versions per N")
    parser.add_argument("--images-per-unit", type=int, default=256)
    parser.add_argument("--units-per-volunteer", type=int, default=1,
                        help="units per version = this × volunteers")  # fmt: skip
    parser.add_argument("--inner-steps", type=int, default=1, help="1: gradient units")
    parser.add_argument("--preset", choices=sorted(presets.DESCRIPTIONS),
                        help="an `init --preset`'s model and units (over --image-size, "
                        "--images-per-unit, --inner-steps)")  # fmt: skip
    parser.add_argument("--weights-precision", choices=("fp32", "bf16"),
                        help="published weights (default: the preset's, else fp32)")  # fmt: skip
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="result payloads (default: the preset's, else fp32)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="change the run's settings (RunSettings keys), e.g. "
                        "inner_steps=64,images_per_work_unit=4096 with --preset class; the "
                        "quality curves follow them")  # fmt: skip
    parser.add_argument("--processes", type=int, default=1,
                        help="child processes the volunteers' threads are split among (more "
                        "only where cores are to spare: crowd.py)")  # fmt: skip
    parser.add_argument("--server-log", type=Path,
                        help="keep the server's log here, with lock waits over 100 ms, "
                        "checkpoints and autovacuum runs in it")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per N at most")
    parser.add_argument("--quality-minutes", type=float, default=60.0,
                        help="time_to_quality_speedup: the quality one computer alone reaches "
                        "in this many minutes")  # fmt: skip
    parser.add_argument("--quality-images", type=int, default=QUALITY_IMAGES,
                        help="training images per reference-trainer curve at most (this caps "
                        "the minutes above; ~3 min per curve here); 0: skip the field")  # fmt: skip
    parser.add_argument("--class-quality-images", type=int,
                        help="training images per class curve (default: --quality-images)")  # fmt: skip
    parser.add_argument("--quality-dataset", default="synthetic", choices=("synthetic", "emoji"))
    parser.add_argument("--curves-only", action="store_true",
                        help="compute (or continue) the quality curves into the cache and "
                        "print them, without simulating a class")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from tests.postgres import PostgresServer  # the benchmarks' use of the test harness

    counts = [int(n) for n in args.volunteers.split(",")]
    if args.curves_only:
        return print_curves(args, counts)
    print(__doc__.split("\n\n")[1].replace("\n", " "), file=sys.stderr)
    runs: list[dict[str, Any]] = []
    server = PostgresServer.start(**(LOCK_LOGGING if args.server_log else {}))
    try:
        listen_everywhere(server)
        with tempfile.TemporaryDirectory(prefix="ganfriends-class-") as tmp:
            for n in counts:
                row = simulate(server, args, n, Path(tmp))
                runs.append(row)
                alone = next((r for r in runs if r["volunteers"] == 1), None)
                base = alone["useful_images_per_s"] if alone else row["ideal_images_per_s"] / n
                row["scaling_efficiency"] = row["useful_images_per_s"] / (n * base)
                print(
                    f"N={n:>3} {args.profile}/{args.network}: {row['useful_images_per_s']:8.1f} "
                    f"useful images/s, efficiency {row['scaling_efficiency']:.2f}, busy median "
                    f"{row['busy_share_median']:.2f} p10 {row['busy_share_p10']:.2f}, "
                    f"coordinator CPU {row['coordinator_cpu_share']:.2f}, egress "
                    f"{row['egress_mb_per_s']:.1f} MB/s, close p50 {row['close_s_p50']:.2f} s, "
                    f"{row['seconds_per_version']:.2f} s/version",
                    flush=True,
                )
                if row["timeline"] is not None:
                    print(row["timeline"].describe(), flush=True)
    finally:
        if args.server_log and server.data_dir is not None:
            shutil.copy(server.data_dir.parent / "server.log", args.server_log)
        server.stop()
        network.teardown()
    add_time_to_quality(args, runs)  # after the classes: the curves would slow them down
    if args.json:
        keys = ("volunteers", "profile", "network", "useful_images_per_s",
                "scaling_efficiency", "busy_share_median", "close_s_p50", "egress_mb_per_s",
                "time_to_quality_speedup", "time_to_quality_speedup_below",
                "quality_horizon_minutes")  # fmt: skip
        print(json.dumps({"runs": [{k: r[k] for k in keys} for r in runs]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

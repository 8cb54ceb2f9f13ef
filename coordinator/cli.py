"""`ganfriends-coordinator`: create and serve a run, the admin console, and the demo."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import ImageColor

from coordinator import admin, presets, volunteers
from coordinator.published_lines import PublishedLines
from coordinator.runs import RunPlan, check_dataset, create_run, read_config
from core.backoff import Backoff
from core.config import RunSettings, SettingsError
from core.data import DatasetError, IngestReport
from core.invite import SSLMODES, InviteError, encode_invite
from core.logs import configure_logging
from core.pipes import quiet_on_broken_pipe
from core.store import (
    DiskFull,
    RunHeld,
    RunLock,
    ServerBusy,
    Store,
    StoreError,
    Superseded,
    open_store,
    sqlite_path,
)
from core.throttle import format_duration

if TYPE_CHECKING:
    from coordinator.loop import Coordinator, Published

Handler = Callable[[argparse.Namespace], int]
PRESETS = presets.DESCRIPTIONS  # `init --preset NAME`: one line each for `init --help`
EXIT_RUN_HELD = 3  # another coordinator serves the run (refused at start, or taken over)
# coordinator.demo.DEMO_DATASETS's names, here so that the parser does not import the demo
DEMO_DATASET_NAMES = ["emoji", "synthetic"]


class UsageError(Exception):
    """A mistake in what the user typed: printed as one line, exit code 2."""


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("GANFRIENDS_DB"),
        help="database URL (or set GANFRIENDS_DB): sqlite:///path/run.db or postgresql+psycopg2://…",
    )


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of a table"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganfriends-coordinator",
        description="Own a ganfriends training run: create it, serve it, and administer it.",
    )
    parser.add_argument("--verbose", action="store_true", help="print debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo", help="train a small GAN on this computer with local workers, no set-up"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local worker processes (default 2; a new run made for 4 or more has 4 units per version)",
    )
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--minutes", type=float, help="stop after this many minutes (default 5)")
    limit.add_argument("--rounds", type=int, help="stop after this many versions")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("ganfriends-demo"),
        help="folder for sample grids, the plot and the model (default ./ganfriends-demo)",
    )
    p.add_argument(
        "--fresh", action="store_true", help="start a new demo run instead of resuming the last one"
    )
    p.add_argument(
        "--dataset",
        choices=DEMO_DATASET_NAMES,
        help="images of a new demo run: emoji (the Noto emoji, 32×32) or synthetic (shapes; "
        "default synthetic)",
    )
    p.set_defaults(handler=_demo)

    p = sub.add_parser(
        "init",
        help="create a run: ingest the dataset and publish version 0",
        description="Create a run: ingest the dataset and publish version 0.",
        epilog="presets:\n"
        + "\n".join(f"  {name:<8}{text}" for name, text in PRESETS.items())
        + "\n\nWith both --preset and --config, the file's keys override the preset's.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _db_arg(p)
    p.add_argument(
        "--dataset",
        help="image folder, .zip of images, emoji (the Noto emoji shipped at 32×32) or "
        "synthetic[:N] (default synthetic; with --preset demo, the demo's synthetic:10000)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="TOML file with [model] and [training] tables (over the preset, if one is given)",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (listed below)")
    p.add_argument(
        "--background",
        default="white",
        metavar="COLOUR",
        help="colour under transparent pixels of the images: a name or #RRGGBB (default white)",
    )
    p.add_argument("--name", default="ganfriends run", help="the run's name")
    p.set_defaults(handler=_init)

    p = sub.add_parser("serve", help="run the coordinator loop until Ctrl-C or SIGTERM")
    _db_arg(p)
    p.add_argument(
        "--poll-s",
        type=float,
        default=0.25,  # coordinator.loop.IDLE_WAIT_S
        help="seconds an idle pass waits for a result (default 0.25; a submit ends the wait at "
        "once); expiry and the watchdog run once per pass",
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("status", help="version, epoch, throughput, quality and workers")
    _db_arg(p)
    _json_arg(p)
    p.set_defaults(handler=_status)

    p = sub.add_parser("workers", help="every worker that has joined, with its contribution")
    _db_arg(p)
    _json_arg(p)
    p.set_defaults(handler=_workers)

    for name, text in (("pause", "stop issuing work units"), ("resume", "issue work units again")):
        p = sub.add_parser(name, help=text)
        _db_arg(p)
        p.set_defaults(handler=_pause if name == "pause" else _resume)

    p = sub.add_parser("set", help="change live settings, e.g. set lr=0.0001 lease_s=120")
    _db_arg(p)
    p.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(handler=_set)

    p = sub.add_parser(
        "invite", help="create a volunteer's login and print its invite code (PostgreSQL runs)"
    )
    _db_arg(p)
    p.add_argument("name", help="the volunteer's name: 1-20 lowercase letters, digits or _")
    p.add_argument(
        "--expires", type=float, metavar="DAYS", help="the code stops working after DAYS days"
    )
    p.add_argument(
        "--host", help="address volunteers reach the server at (default: the --db URL's host)"
    )
    p.add_argument("--port", type=int, help="server port (default: the --db URL's, or 5432)")
    p.add_argument(
        "--sslmode",
        choices=SSLMODES,
        default="require",
        help="TLS the volunteer's connection insists on (default require; verify-full also "
        "checks the server's certificate)",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=volunteers.CONNECTION_LIMIT,
        help=f"most sessions at once (default {volunteers.CONNECTION_LIMIT}; "
        "a worker process uses 2)",
    )
    p.set_defaults(handler=_invite)

    p = sub.add_parser("volunteers", help="every invited volunteer, with sessions and work")
    _db_arg(p)
    _json_arg(p)
    p.set_defaults(handler=_volunteers)

    p = sub.add_parser(
        "revoke", help="lock a volunteer out now: no login, sessions ended, leases released"
    )
    _db_arg(p)
    p.add_argument("name", help="the volunteer's name, as given to invite")
    p.set_defaults(handler=_revoke)

    p = sub.add_parser(
        "rollback",
        help="go back to a kept version (weights and optimizer state); later ones are deleted",
    )
    _db_arg(p)
    p.add_argument(
        "--to", type=int, required=True, metavar="VERSION", help="the version to go back to"
    )
    p.set_defaults(handler=_rollback)

    p = sub.add_parser("export", help="write the latest model (weights + config) to a file")
    _db_arg(p)
    p.add_argument("--out", type=Path, required=True, help="file to write (safetensors)")
    p.set_defaults(handler=_export)

    p = sub.add_parser("samples", help="write the stored sample grids to a folder")
    _db_arg(p)
    p.add_argument("--out", type=Path, required=True, help="folder to write PNGs into")
    p.set_defaults(handler=_samples)
    return parser


@quiet_on_broken_pipe
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ganfriends-coordinator", verbose=args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (RunHeld, Superseded) as exc:
        # Its own exit status, so a service manager can be told not to restart on it.
        print(f"ganfriends-coordinator {args.command}: {exc}", file=sys.stderr)
        return EXIT_RUN_HELD
    except (
        UsageError,
        StoreError,
        SettingsError,
        DatasetError,
        InviteError,
        admin.OutputError,
    ) as exc:
        print(f"ganfriends-coordinator {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganfriends-coordinator {args.command}: interrupted", file=sys.stderr)
        return 130


def _need_db(args: argparse.Namespace) -> str:
    if not args.db:
        raise UsageError("say which database: --db URL (or set GANFRIENDS_DB)")
    return str(args.db)


def _init(args: argparse.Namespace) -> int:
    url = _need_db(args)
    dataset = args.dataset
    base = None if args.preset is None else presets.preset(args.preset)
    if args.preset == "demo":
        from coordinator.demo import DEMO_DATASET, DEMO_DATASETS

        dataset = dataset or DEMO_DATASETS[DEMO_DATASET]
    model, settings = read_config(args.config, base)
    dataset_spec = check_dataset(dataset or "synthetic")
    plan = RunPlan(args.name, model, settings, dataset_spec, _colour(args.background))
    report = IngestReport()
    path = sqlite_path(url)
    existed = path is not None and path.exists()
    # Folders open_store(create=True) is about to make, deepest first, to remove on failure.
    new_dirs = [] if path is None else [d for d in path.absolute().parents if not d.exists()]
    try:
        store = open_store(url, create=True)
        try:
            run = create_run(store, plan, report=report)
        finally:
            store.dispose()
    except BaseException:
        if path is not None and not existed:  # leave nothing behind for a run that failed
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            for folder in new_dirs:
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
        raise
    print("\n".join(report.summary()))
    print(
        f"created run {run.name!r}: {run.dataset_size} images, version 0 published; start it with: ganfriends-coordinator serve --db {url}"
    )
    return 0


def _colour(text: str) -> tuple[int, int, int]:
    try:
        red, green, blue = ImageColor.getrgb(text)[:3]
    except ValueError:
        raise UsageError(
            f"--background {text!r} is not a colour: give a name such as white or black, or #RRGGBB"
        ) from None
    return red, green, blue


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.poll_s <= 60:
        raise SystemExit("ganfriends-coordinator serve: --poll-s must be between 0 and 60 seconds")

    url = _need_db(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    lines = PublishedLines()
    taken = _take_run(url, stop, lines.published)
    if taken is None:
        print("stopped before serving", file=sys.stderr)
        return 0
    coordinator, lock = taken
    from coordinator.loop import INTRA_OP_THREADS
    from core.collector import freeze_startup_objects
    from core.training import intra_op_threads

    try:
        print(f"serving from version {coordinator.version}; Ctrl-C stops", file=sys.stderr)
        freeze_startup_objects()
        with intra_op_threads(INTRA_OP_THREADS):
            coordinator.serve(stop, poll_s=args.poll_s)
    finally:
        lock.release()
        lines.close()
    print(f"stopped at version {coordinator.version}", file=sys.stderr)
    return 0


def _take_run(
    url: str, stop: threading.Event, on_published: Callable[[Published], None]
) -> tuple[Coordinator, RunLock] | None:
    """Open the run and take it as its coordinator; None if stopped first.

    A server with no free connection slot or a full disk is waited out, as `serve` waits out
    a lost database: said once, retried with backoff. Anything else ends the command.
    """
    from coordinator.loop import RECONNECT_INITIAL_S, RECONNECT_MAX_S, Coordinator

    retry = Backoff(initial_s=RECONNECT_INITIAL_S, maximum_s=RECONNECT_MAX_S)
    said: type[StoreError] | None = None
    while not stop.is_set():
        store: Store | None = None
        lock: RunLock | None = None
        try:
            store = open_store(url)
            lock = RunLock(store.engine)  # held until this process ends
            coordinator = Coordinator(store, on_published=on_published, lock=lock)
        except (ServerBusy, DiskFull) as exc:
            if lock is not None:
                lock.release()
            if store is not None:
                store.dispose()
            if type(exc) is not said:
                print(f"ganfriends-coordinator serve: {exc}; waiting", file=sys.stderr, flush=True)
                said = type(exc)
            stop.wait(retry.next_delay())
            continue
        return coordinator, lock
    return None


def _version_text(status: dict[str, Any]) -> str:
    """'812 (epoch 3; published 12 s ago)': how old the newest version, and so the images/s
    of the versions before it, is."""
    age = status["version_age_s"]
    since = "" if age is None else f"; published {format_duration(age)} ago"
    return f"{status['version']} (epoch {status['epoch']}{since})"


def _best_quality(best: dict[str, Any] | None, version: int) -> str:
    if best is None:
        return "—"
    if best["version"] == version:
        return f"{best['swd']:.1f}, this version"
    return (f"{best['swd']:.1f} at version {best['version']} (kept; to go back to it: "
            f"ganfriends-coordinator rollback --to {best['version']})")  # fmt: skip


def _status(args: argparse.Namespace) -> int:
    status = admin.run_status(open_store(_need_db(args), read_only=True))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    ips = status["images_per_s"]
    swd = status["quality_swd"]
    units = status["units"]
    lines = [
        ("run", f"{status['name']} ({status['status']})"),
        ("version", _version_text(status)),
        ("images/s", f"{ips:.1f}" if ips is not None else "—"),
        (
            "quality (SWD, lower is better)",
            f"{swd:.1f} ± {status['quality_swd_std']:.1f}" if swd is not None else "—",
        ),
        ("best quality so far", _best_quality(status["quality_best"], status["version"])),
        ("units of this version", ", ".join(f"{k} {v}" for k, v in units.items())),
        ("workers", f"{status['workers_active']} active, {status['workers_stalled']} stalled"),
        ("units per version", str(status["units_per_version"])),
        ("unit kind", str(status["unit_kind"])),
        ("rejected results", str(status["rejected_results"])),
    ]
    for offender in status["sessions_ended"]:
        repeat = "repeat offender: " if offender["repeat_offender"] else ""
        lines.append(
            (
                f"watchdog: {offender['name']}",
                f"{repeat}{offender['sessions_ended']} session(s) ended, last: "
                f"{offender['last_why']}; to lock them out: {offender['revoke']}",
            )
        )
    verification = status["verification"]
    lines.append(("verification", str(verification["text"])))
    if verification["policy"] != "off":
        lines.append(
            (
                "verified results",
                f"{verification['verified_results']} confirmed by a second volunteer, "
                f"{verification['held_results']} waiting for one; "
                f"{verification['trusted_volunteers']} volunteer(s) trusted",
            )
        )
    for caught in verification["quarantined"]:
        lines.append(
            (f"QUARANTINED: {caught['identity']}", f"{caught['reason']}; {caught['remedy']}")
        )
    alert = status["alert"]
    if alert:
        lines.append(("PROBLEM", f"{alert['message']}; {alert['remedy']}"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    if status["advice"]:
        print(f"note: {status['advice']}")
    return 0


def _workers(args: argparse.Namespace) -> int:
    store = open_store(_need_db(args), read_only=True)
    rows = admin.worker_table(store)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
        advice = admin.waiting_advice(store)
        if advice:
            print(f"note: {advice}")
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(none)")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.upper().ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys))


def _pause(args: argparse.Namespace) -> int:
    open_store(_need_db(args)).set_status("paused")
    print("paused: no new units are issued; units being computed may still finish")
    return 0


def _resume(args: argparse.Namespace) -> int:
    open_store(_need_db(args)).set_status("active")
    print("resumed")
    return 0


def _set(args: argparse.Namespace) -> int:
    changes = {}
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{pair!r} is not KEY=VALUE")
        changes[key.strip()] = value.strip()
    store = open_store(_need_db(args))
    updated = admin.set_settings(store, changes)
    print(
        "set "
        + ", ".join(f"{k}={getattr(updated, k)}" for k in changes)
        + " (applies from the next version)"
    )
    return 0


def _invite(args: argparse.Namespace) -> int:
    store = open_store(_need_db(args))
    try:
        url = store.engine.url
        host = args.host or url.host or "localhost"
        invite = volunteers.invite(
            store,
            args.name,
            host=host,
            port=args.port or url.port or 5432,
            sslmode=args.sslmode,
            expires_days=args.expires,
            connections=args.connections,
        )
        hardening = volunteers.missing_hardening(store)
        verification = RunSettings.from_dict(store.get_run().settings).verification
    finally:
        store.dispose()
    until = f", valid for {args.expires:g} days" if args.expires else ""
    print(
        f"invited {args.name} as role {invite.role} (up to {args.connections} connections"
        f"{until}). Send them this code; whoever holds it joins as {args.name}:",
        file=sys.stderr,
    )
    if host in ("localhost", "127.0.0.1", "::1"):
        print(
            f"note: the code points at {host}, which only works on this computer; "
            "give --host with the address volunteers reach the server at",
            file=sys.stderr,
        )
    if hardening:
        print(
            "note: volunteers can still create large objects or write unlimited temporary "
            f"files in this database; as a superuser, connect to it and run: {hardening}",
            file=sys.stderr,
        )
    if verification == "off":
        print(
            "note: this run counts every valid result unchecked (verification=off), so a "
            "volunteer who cheats changes the run; to have new volunteers' results confirmed "
            "by another volunteer first: ganfriends-coordinator set verification=adaptive "
            "(docs/verification.md)",
            file=sys.stderr,
        )
    print(encode_invite(invite))
    return 0


def _volunteers(args: argparse.Namespace) -> int:
    store = open_store(_need_db(args), read_only=True)
    try:
        rows = admin.volunteer_table(store)
        group = volunteers.group_role(store)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table([admin.readable_volunteer(row) for row in rows])
        print(f"\nvolunteer group role: {group} (in pg_hba.conf: +{group})")
        for row in rows:
            if row["ended"] >= admin.REPEAT_OFFENDER and row["status"] == "active":
                print(
                    f"repeat offender: {row['name']}, {row['ended']} session(s) ended by the "
                    f"watchdog (last: {row['last_ended_why']}); to lock them out: "
                    f"ganfriends-coordinator revoke {row['name']}"
                )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    store = open_store(_need_db(args))
    try:
        done = volunteers.revoke(store, args.name)
    finally:
        store.dispose()
    print(
        f"revoked {done.name} (role {done.role}) in {done.seconds:.2f} s: "
        f"{done.sessions_ended} session(s) ended, {done.leases_released} lease(s) released, "
        f"{done.results_dropped} unjudged result(s) dropped"
    )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from coordinator.rollback import full_states, roll_back

    store = open_store(_need_db(args))
    lock = RunLock(store.engine)
    try:
        # Taking the run refuses while a coordinator serves it, and fences a frozen one.
        fenced = store.take_run(lock)
        at = fenced.get_run().version
        roll_back(fenced, args.to, f"by the owner, from version {at}")
        kept = ", ".join(map(str, full_states(fenced)))
    finally:
        lock.release()
        store.dispose()
    print(
        f"rolled back from version {at} to version {args.to} (kept full states now: {kept}); "
        "`serve` continues from there"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    version = admin.export_model(open_store(_need_db(args), read_only=True), args.out)
    print(f"wrote version {version} to {args.out}")
    return 0


def _samples(args: argparse.Namespace) -> int:
    written = admin.write_samples(open_store(_need_db(args), read_only=True), args.out)
    print(f"wrote {len(written)} sample grid(s) to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from coordinator.demo import DemoOptions, run_demo

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise UsageError("--minutes must be more than 0")
    if args.rounds is not None and args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    minutes = args.minutes if args.minutes is not None or args.rounds is not None else 5.0
    return run_demo(
        DemoOptions(args.workers, minutes, args.rounds, args.out, args.fresh, args.dataset)
    )


if __name__ == "__main__":
    sys.exit(main())

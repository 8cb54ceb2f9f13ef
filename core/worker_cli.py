"""`ganfriends-worker`: the headless volunteer worker for lab PC pools."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

from core.backoff import Backoff
from core.cache import DEFAULT_CAP_BYTES, ShardCache
from core.collector import freeze_startup_objects
from core.device import (
    DeviceError,
    lower_priority,
    register_local_worker,
    select_device,
)
from core.events import Tally, units_line, worth_logging
from core.invite import InviteError, decode_invite
from core.logs import configure_logging
from core.paths import cache_dir
from core.pipes import quiet_on_broken_pipe
from core.store import DatabaseUnavailable, StoreError, open_store
from core.worker import WorkerEngine, WorkerEvent, WorkerOptions

STARTUP_PATIENCE_S = 30.0  # seconds an unreachable database is waited for at start-up


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganfriends-worker",
        description="Donate this computer's time to a ganfriends training run: claim work units, "
        "compute their gradients and upload them, until stopped (Ctrl-C or SIGTERM).",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("GANFRIENDS_DB"),
        help="database URL of the run (or set GANFRIENDS_DB), e.g. sqlite:///path/run.db",
    )
    parser.add_argument(
        "--invite",
        default=os.environ.get("GANFRIENDS_INVITE"),
        help="invite code from the run's owner (or set GANFRIENDS_INVITE); replaces --db",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads per unit (default: the run's compute_threads, so results are bitwise "
        "reproducible; more cores are better used by more workers)",
    )
    parser.add_argument(
        "--name", default=None, help="name shown on the leaderboard (default: this computer's name)"
    )
    parser.add_argument("--max-units", type=_positive_int, help="stop after this many units")
    parser.add_argument(
        "--cache-gb",
        type=float,
        default=DEFAULT_CAP_BYTES / 1024**3,
        help="size cap of the dataset cache in GiB (default: 4)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument("--verbose", action="store_true", help="print debug logging")
    return parser


@quiet_on_broken_pipe
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.invite:
        try:
            args.db = decode_invite(args.invite).url()
        except InviteError as exc:
            print(f"ganfriends-worker: {exc}", file=sys.stderr)
            return 2
    if not args.db:
        parser.error("say which run to join: --invite CODE or --db URL (or set GANFRIENDS_DB)")
    configure_logging("ganfriends-worker", verbose=args.verbose)
    try:
        device = select_device(args.device)
        _check_run(args.db)
    except (DeviceError, StoreError) as exc:
        print(f"ganfriends-worker: {exc}", file=sys.stderr)
        return 2
    lower_priority()
    registry = cache_dir() / "workers"
    register_local_worker(registry)
    threads = args.threads  # None: the run's compute_threads (the engine applies it)
    shown_threads = str(threads) if threads else "the run's"
    options = WorkerOptions(
        name=args.name or socket.gethostname(),
        hostname=socket.gethostname(),
        device=device,
        threads=threads,
        max_units=args.max_units,
    )
    cache = ShardCache(cache_dir() / "shards", int(args.cache_gb * 1024**3))

    def connect():
        return open_store(args.db)

    engine = WorkerEngine(connect, cache, options, on_event=None if args.quiet else _printer())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: engine.stop())
    print(
        f"ganfriends-worker: {options.name} on {device} with {shown_threads} thread(s); "
        "Ctrl-C stops",
        file=sys.stderr,
    )
    freeze_startup_objects()
    done = engine.run()
    print(f"ganfriends-worker: stopped after {done} unit(s)", file=sys.stderr)
    return 0


def _check_run(url: str) -> None:
    """Refuse a wrong URL or a database without a run at once; wait out a short outage."""
    backoff = Backoff(initial_s=0.5, maximum_s=5.0)
    deadline = time.monotonic() + STARTUP_PATIENCE_S
    while True:
        try:
            store = open_store(url)
            try:
                store.get_run()
            finally:
                store.dispose()
            return
        except DatabaseUnavailable:
            # A server restarting looks the same as a wrong host: retry for a while, then say so.
            if time.monotonic() > deadline:
                raise
            time.sleep(backoff.next_delay())


def _printer(clock: Callable[[], float] = time.time):
    """The console's lines, as the app's event log tells them: problems and changes at once,
    each unit's steps never, finished units in one line a minute (short units, a line or more
    a second, would flood a lab's journal); a line is not repeated right after itself."""
    tally: Tally[WorkerEvent] = Tally()
    last = {"message": ""}

    def say(message: str) -> None:
        if message != last["message"]:
            last["message"] = message
            print(message, file=sys.stderr, flush=True)

    def on_event(event: WorkerEvent) -> None:
        if event.kind == "unit_finished":
            tally.add(event)
        units = tally.take(clock(), final=event.state == "stopped")
        if units:
            say(units_line(units)[1])
        if worth_logging(event):
            say(event.message)

    return on_event


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""ganfriends-lab-setup: enable one headless worker service per GPU on a lab computer."""

# Installed as /usr/sbin/ganfriends-lab-setup by the .deb; standard library only, and kept
# runnable by the distribution's python3 (3.9 or newer), not the app's private environment.
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

UNIT_PREFIX = "ganfriends-worker@"
ENV_FILE = Path("/etc/ganfriends/worker.env")
WANTS_DIR = Path("/etc/systemd/system/multi-user.target.wants")
NVIDIA_SMI_ARGS = ("--query-gpu=uuid", "--format=csv,noheader")
# nvidia-smi prints GPU-<uuid>, and MIG-<uuid> for MIG slices on current drivers; both are
# valid systemd instance names as they are (letters, digits and dashes).
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Fa-f-]+$")

GpuQuery = Callable[[], "str | None"]
Runner = Callable[[Sequence[str]], None]


class SetupError(RuntimeError):
    """The workers could not be set up; the message says what to do."""


def unit_name(instance: str) -> str:
    """The service unit of one worker instance: a GPU UUID or "cpu"."""
    return f"{UNIT_PREFIX}{instance}.service"


def nvidia_smi_query(nvidia_smi: str = "nvidia-smi") -> GpuQuery:
    """A query that returns nvidia-smi's UUID list, or None when nvidia-smi is not installed."""

    def query() -> str | None:
        try:
            proc = subprocess.run(
                [nvidia_smi, *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=60
            )
        except FileNotFoundError:
            return None
        if proc.returncode != 0:
            raise SetupError(
                f"{nvidia_smi} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}; "
                "fix the NVIDIA driver, or pass --cpu to run one CPU worker instead"
            )
        return proc.stdout

    return query


def list_gpus(query: GpuQuery) -> list[str]:
    """The UUIDs of this computer's GPUs in nvidia-smi's order; [] without an NVIDIA driver."""
    text = query()
    if text is None:
        return []
    uuids = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [u for u in uuids if not _UUID.match(u)]
    if bad:
        raise SetupError(
            f"nvidia-smi printed GPU ids this command does not understand: {bad}; "
            "update the NVIDIA driver, or pass --cpu"
        )
    return uuids


def enabled_instances(wants_dir: Path = WANTS_DIR) -> list[str]:
    """The worker instances currently enabled (linked into multi-user.target.wants)."""
    names = sorted(p.name for p in wants_dir.glob(f"{UNIT_PREFIX}*.service"))
    return [n[len(UNIT_PREFIX) : -len(".service")] for n in names]


def plan_commands(wanted: Sequence[str], enabled: Sequence[str]) -> list[list[str]]:
    """The systemctl commands that leave exactly the `wanted` instances enabled and running.

    Wanted instances are restarted, so that a new invite code or database URL takes effect;
    instances enabled before but no longer wanted (a GPU was removed) are disabled and stopped.
    """
    commands = [["systemctl", "disable", "--now", unit_name(i)] for i in enabled if i not in wanted]
    if wanted:
        units = [unit_name(i) for i in wanted]
        commands.append(["systemctl", "enable", *units])
        commands.append(["systemctl", "restart", *units])
    return commands


def env_file_text(invite: str | None, db: str | None) -> str:
    """The worker.env contents for an invite code or a database URL (exactly one is given)."""
    key, value = ("GANFRIENDS_INVITE", invite) if invite else ("GANFRIENDS_DB", db)
    if not value or any(c in value for c in "'\n\r") or value != value.strip():
        raise SetupError(
            f"{key} must be one line without quotes or surrounding spaces; paste it again"
        )
    # Single quotes: systemd then takes the value literally ($, \ and " stay as they are).
    return (
        f"# Written by ganfriends-lab-setup: the run the headless workers join.\n{key}='{value}'\n"
    )


def write_env_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 (it holds a credential), atomically."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".worker.env.")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def run_command(cmd: Sequence[str]) -> None:
    """Run one systemctl command; SetupError with its output when it fails."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"{shlex.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ganfriends-lab-setup."""
    parser = argparse.ArgumentParser(
        prog="ganfriends-lab-setup",
        description="Enable one headless ganfriends worker service per GPU of this computer "
        "(ganfriends-worker@<GPU UUID>.service), or one CPU worker (ganfriends-worker@cpu) "
        "when it has no NVIDIA GPU. Run it again after adding or removing a GPU.",
    )
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--invite", help="invite code of the run to join (written to worker.env)")
    run.add_argument("--db", help="database URL of the run to join (written to worker.env)")
    parser.add_argument("--cpu", action="store_true", help="one CPU worker, even with GPUs")
    parser.add_argument(
        "--remove", action="store_true", help="disable and stop every worker instance"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands instead of running them"
    )
    parser.add_argument("--nvidia-smi", default="nvidia-smi", help="path of nvidia-smi")
    parser.add_argument("--env-file", type=Path, default=ENV_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--wants-dir", type=Path, default=WANTS_DIR, help=argparse.SUPPRESS)
    return parser


def main(
    argv: Sequence[str] | None = None,
    query: GpuQuery | None = None,
    run: Runner = run_command,
) -> int:
    """Set up the worker instances; 0 on success, 1 with a one-line error otherwise."""
    args = build_parser().parse_args(argv)
    try:
        _setup(args, query or nvidia_smi_query(args.nvidia_smi), run)
    except (SetupError, OSError) as exc:
        print(f"ganfriends-lab-setup: {exc}", file=sys.stderr)
        return 1
    return 0


def _setup(args: argparse.Namespace, query: GpuQuery, run: Runner) -> None:
    if not args.dry_run and os.geteuid() != 0:
        raise SetupError("run it as root: sudo ganfriends-lab-setup … (or try --dry-run)")
    enabled = enabled_instances(args.wants_dir)
    if args.remove:
        wanted: list[str] = []
    else:
        _configure_run(args)
        wanted = ["cpu"] if args.cpu else (list_gpus(query) or ["cpu"])
    for cmd in plan_commands(wanted, enabled):
        if args.dry_run:
            print(shlex.join(cmd))
        else:
            run(cmd)
    if wanted:
        print(
            f"{'would enable' if args.dry_run else 'enabled'} {len(wanted)} worker(s): "
            + ", ".join(unit_name(i) for i in wanted)
        )
        print("logs: journalctl -u 'ganfriends-worker@*'")
    else:
        print(f"{'would disable' if args.dry_run else 'disabled'} every ganfriends worker")


def _configure_run(args: argparse.Namespace) -> None:
    if args.invite or args.db:
        text = env_file_text(args.invite, args.db)
        if args.dry_run:
            key = "GANFRIENDS_INVITE" if args.invite else "GANFRIENDS_DB"
            print(f"# would write {args.env_file} (mode 0600) with {key}=<hidden>")
        else:
            write_env_file(args.env_file, text)
    elif not args.env_file.exists():
        raise SetupError(
            f"{args.env_file} does not exist yet: say which run to join with --invite CODE "
            "or --db URL"
        )


if __name__ == "__main__":
    sys.exit(main())

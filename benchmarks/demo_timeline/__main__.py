"""Where a demo version's wall time goes: the synchronous update's critical path, per phase.

Runs the real `ganfriends-coordinator demo --workers N --minutes M --fresh` (own temp data
folder) with a `sitecustomize` on PYTHONPATH (benchmarks/demo_timeline/probe) that wraps a few
methods of the coordinator and of both worker processes and appends one line per call
(process, name, start, end, CPU seconds of the calling thread) to a file. Nothing else changes.
Then, for each version after a warm-up fifth, it prints, from the publish of version v (the
commit that workers wake on) to the publish of v+1:

- period: publish to publish;
- first / last worker computing: publish → the first and the last `_compute` of that version
  (claim, weights, images before it);
- compute: the longest unit's compute;
- last upload: the last compute's end → the last submit's end (encode, upload);
- to close: that submit → the coordinator's `_close` (its wake-up, decode, validation);
- close: `_close` → the publish commit;

and, per wrapped method (calls after the warm-up), its wall and thread-CPU seconds: a call whose
CPU is far below its wall waited for a core, a lock or the GIL.

    .venv/bin/python -m benchmarks.demo_timeline [--workers 2] [--minutes 0.6]

`--calls FILE` reports on a file the probe wrote during another run instead, for example a
class simulation started with the probe on its PYTHONPATH and GANFRIENDS_TIMELINE=FILE.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.demo_compute_share import run_demo

PROBE_DIR = Path(__file__).resolve().parent / "probe"
PUBLISH = "RunMixin.publish_version"
PHASES = ("period", "first worker computing", "last worker computing", "compute",
          "last upload", "to close", "close")  # fmt: skip


@dataclass(frozen=True)
class Call:
    pid: int
    name: str
    start: float
    end: float
    cpu: float


def read_calls(path: Path) -> list[Call]:
    calls = []
    for line in path.read_text().splitlines():
        pid, name, start, end, cpu = line.split()
        calls.append(Call(int(pid), name, float(start), float(end), float(cpu)))
    return calls


def phases(calls: Sequence[Call]) -> dict[str, list[float]]:
    """Seconds of each phase, one value per complete version (see the module docstring)."""
    publishes = sorted(c.end for c in calls if c.name == PUBLISH)
    computes = sorted((c.start, c.end) for c in calls if c.name == "WorkerEngine._compute")
    submits = sorted(c.end for c in calls if c.name == "WorkerEngine._submit")
    closes = sorted(c.start for c in calls if c.name == "Coordinator._close")
    out: dict[str, list[float]] = defaultdict(list)
    for i in range(len(publishes) // 5, len(publishes) - 1):  # a fifth to warm up
        begin, end = publishes[i], publishes[i + 1]
        units = [(s, e) for s, e in computes if begin <= s < end]
        close = [s for s in closes if begin <= s < end]
        if not units or not close:
            continue
        last_end = max(e for _, e in units)
        uploaded = [t for t in submits if last_end <= t < close[-1]]
        if not uploaded:
            continue
        out["period"].append(end - begin)
        out["first worker computing"].append(min(s for s, _ in units) - begin)
        out["last worker computing"].append(max(s for s, _ in units) - begin)
        out["compute"].append(max(e - s for s, e in units))
        out["last upload"].append(uploaded[-1] - last_end)
        out["to close"].append(close[-1] - uploaded[-1])
        out["close"].append(end - close[-1])
    return out


def report(calls: Sequence[Call], what: str) -> str:
    table = phases(calls)
    versions = len(table["period"])
    lines = [f"{versions} versions after the warm-up, {what}, {os.cpu_count()} cores"]
    lines.append(f"  {'phase':24s} {'p50 ms':>8s} {'mean ms':>8s}")
    for phase in PHASES:
        values = table.get(phase) or [float("nan")]
        lines.append(
            f"  {phase:24s} {1000 * statistics.median(values):8.1f} "
            f"{1000 * statistics.fmean(values):8.1f}"
        )
    publishes = sorted(c.end for c in calls if c.name == PUBLISH)
    warm = publishes[len(publishes) // 5] if publishes else 0.0
    by_name: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.start >= warm:  # the shard downloads of the first units are not steady state
            by_name[call.name].append(call)
    lines.append("  calls after the warm-up:")
    lines.append(f"  {'call':36s} {'n':>5s} {'wall s':>7s} {'cpu s':>7s} {'cpu/wall':>8s}")
    for name, group in sorted(by_name.items()):
        wall = sum(c.end - c.start for c in group)
        cpu = sum(c.cpu for c in group)
        lines.append(
            f"  {name:36s} {len(group):5d} {wall:7.2f} {cpu:7.2f} {cpu / max(wall, 1e-9):8.2f}"
        )
    periods = table.get("period")
    if periods:
        compute = statistics.fmean(table["compute"]) / statistics.fmean(periods)
        lines.append(f"  longest unit's compute ÷ period (mean): {compute:.2f}")
    return "\n".join(lines)


def measure(workers: int, minutes: float) -> list[Call]:
    with tempfile.TemporaryDirectory(prefix="ganfriends-timeline-") as tmp:
        log = Path(tmp) / "calls.txt"
        path = os.environ.get("PYTHONPATH", "")
        run_demo(
            tmp,
            workers,
            minutes,
            GANFRIENDS_TIMELINE=str(log),
            PYTHONPATH=os.pathsep.join(p for p in (str(PROBE_DIR), path) if p),
        )
        return read_calls(log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_timeline", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--minutes", type=float, default=0.6, help="demo length")
    parser.add_argument(
        "--calls", type=Path, help="report on this probe file instead of running the demo"
    )
    args = parser.parse_args(argv)
    if args.calls is not None:
        print(report(read_calls(args.calls), str(args.calls)))
    else:
        print(report(measure(args.workers, args.minutes), f"{args.workers} workers"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""benchmarks.demo_timeline: the probe wraps the named methods of a process that imports them,
and the phases of a version are read from the calls as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.demo_timeline.__main__ import PROBE_DIR, Call, main, phases


def _version(begin: float, pid: int = 1) -> list[Call]:
    """One synthetic version published at `begin`: two units, a close 0.3 s later."""
    t = begin
    return [
        Call(pid, "WorkerEngine._compute", t + 0.02, t + 0.12, 0.1),
        Call(pid + 1, "WorkerEngine._compute", t + 0.05, t + 0.16, 0.1),
        Call(pid, "WorkerEngine._submit", t + 0.12, t + 0.13, 0.01),
        Call(pid + 1, "WorkerEngine._submit", t + 0.16, t + 0.18, 0.01),
        Call(0, "Coordinator._close", t + 0.19, t + 0.215, 0.02),
        Call(0, "RunMixin.publish_version", t + 0.2, t + 0.3, 0.01),
    ]


def test_phases_follow_a_version_from_publish_to_publish() -> None:
    calls = [Call(0, "RunMixin.publish_version", -0.1, 0.0, 0.0)]
    for i in range(10):
        calls += _version(0.3 * i)
    table = phases(calls)
    assert len(table["period"]) == 9 - 10 // 5 + 1  # a fifth is warm-up; the last is open
    expected = {
        "period": 0.3,
        "first worker computing": 0.02,
        "last worker computing": 0.05,
        "compute": 0.11,
        "last upload": 0.02,
        "to close": 0.01,
        "close": 0.11,
    }
    for phase, seconds in expected.items():
        assert table[phase] == pytest.approx([seconds] * len(table["period"]), abs=1e-9), phase


def test_calls_reports_on_a_probe_file_another_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = [Call(0, "RunMixin.publish_version", -0.1, 0.0, 0.0)]
    for i in range(10):
        calls += _version(0.3 * i)
    log = tmp_path / "calls.txt"
    log.write_text("".join(f"{c.pid} {c.name} {c.start} {c.end} {c.cpu}\n" for c in calls))
    assert main(["--calls", str(log)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"8 versions after the warm-up, {log}, ")
    assert "last upload" in out and "20.0" in out  # ms, as the synthetic versions have it


def test_the_probe_wraps_and_logs_only_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    script = (
        "from core.shards import ShardFetcher\nprint(hasattr(ShardFetcher.images, '__wrapped__'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(PROBE_DIR))
    env.pop("GANFRIENDS_TIMELINE", None)
    plain = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert plain.stdout.strip() == "False"
    env["GANFRIENDS_TIMELINE"] = str(log)
    probed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert probed.stdout.strip() == "True", probed.stderr

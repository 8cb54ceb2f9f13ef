"""Run the self-test script in the new environment and explain any failed check."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ganfriends_bootstrap.locks import BootstrapError
from ganfriends_bootstrap.progress import Report

SELF_TEST_TIMEOUT_S = 300.0  # seconds; the first torch import on a cold disk is slow
CHECKS = ("torch", "torchvision", "qt", "database", "ganfriends")  # selftest_script.py's order


class SelfTestFailed(BootstrapError):
    """A check of the self-test failed; the message names it."""


@dataclass(frozen=True)
class CheckResult:
    """One line of the self-test's answer."""

    check: str
    ok: bool
    detail: str
    trace: str = ""


def _script() -> str:
    # read as text so this works from inside the zipapp too
    return resources.files("ganfriends_bootstrap").joinpath("selftest_script.py").read_text()


def parse_results(output: str) -> list[CheckResult]:
    """The JSON lines of the script's output; other lines (warnings) are ignored."""
    results = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                results.append(CheckResult(**json.loads(line)))
            except (ValueError, TypeError):
                continue
    return results


def run_self_test(python: Path, variant: str, report: Report) -> list[CheckResult]:
    """Run every check in a subprocess of `python`; SelfTestFailed names the first failure."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    try:
        done = subprocess.run(
            # -I: neither the current directory nor PYTHONPATH may supply `core` or torch
            [str(python), "-I", "-c", _script(), variant],
            capture_output=True,
            text=True,
            timeout=SELF_TEST_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SelfTestFailed(
            f"the self-test did not finish in {SELF_TEST_TIMEOUT_S:.0f} s; run with --repair"
        ) from exc
    results = parse_results(done.stdout)
    for r in results:
        report(f"self-test {r.check}: {'ok' if r.ok else 'FAILED'} ({r.detail})")
    bad = [r for r in results if not r.ok]
    if bad:
        raise SelfTestFailed(
            f"self-test check '{bad[0].check}' failed: {bad[0].detail}\n{bad[0].trace.strip()}\n"
            "Next step: run GANfriends with --repair; if that fails too, report this message."
        )
    if done.returncode != 0 or len(results) < len(CHECKS):
        crashed = CHECKS[min(len(results), len(CHECKS) - 1)]
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise SelfTestFailed(
            f"self-test check '{crashed}' crashed (exit code {done.returncode}):\n{tail}\n"
            "Next step: run GANfriends with --repair."
        )
    return results

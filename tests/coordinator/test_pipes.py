"""Commands whose reader goes away (`status | head -3`) exit quietly, without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.pipes import EXIT_BROKEN_PIPE
from tests.coordinator.harness import make_tiny_run


def closed_reader(*command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a command whose stdout pipe is closed before it writes; (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader leaves at once, as `head` does after its lines
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
def test_status_and_worker_help_exit_quietly_when_the_pipe_closes(tmp_path) -> None:
    run = make_tiny_run(tmp_path)
    for command in (
        ("coordinator.cli", "status", "--db", run.url),
        ("coordinator.cli", "workers", "--db", run.url),
        ("core.worker_cli", "--help"),
    ):
        code, err = closed_reader(*command, env=run.env)
        assert "Traceback" not in err and "BrokenPipeError" not in err, err
        # `--help` exits through argparse before our flush: its buffered text is dropped quietly.
        assert code in ((0, EXIT_BROKEN_PIPE) if "--help" in command else (EXIT_BROKEN_PIPE,))

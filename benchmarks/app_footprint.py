"""The desktop app's own figures during a live local run, without touching docs/screenshots.

Event-loop latency while a unit computes (p50/p99 of a 10 ms timer's lateness), the app's CPU
and memory idle and while donating (the compute child process not included), and the time from
pressing Start to the first unit computing in local mode. It is the measurement half of
`python -m client_gui.screenshots` (real windows under Xvfb, a live local run with a second
headless worker beside the app), with the pictures written to a temporary folder.

    .venv/bin/python -m benchmarks.app_footprint [--seconds 90]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

from client_gui import screenshots


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.app_footprint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=90.0, help="donate this long")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ganfriends-footprint-") as folder:
        return screenshots.main(["--out", folder, "--seconds", str(args.seconds)])


if __name__ == "__main__":
    raise SystemExit(main())

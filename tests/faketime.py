"""Processes whose wall clock is off by a fixed amount, through libfaketime (LD_PRELOAD).

Debian/Ubuntu: `apt-get install libfaketime` (scripts/test installs it). GANFRIENDS_LIBFAKETIME
may name the library elsewhere. Tests that need it skip, saying so, where it is missing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

# The multi-threaded build: workers and the coordinator read the clock from several threads.
CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)


def library() -> Path | None:
    """The libfaketime library to preload, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    named = os.environ.get("GANFRIENDS_LIBFAKETIME")
    for candidate in ([named] if named else []) + list(CANDIDATES):
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def skewed(env: Mapping[str, str], offset: str) -> dict[str, str]:
    """`env` for a process whose clock is `offset` off ('+2h', '-5m'); skips without the library."""
    found = library()
    if found is None:
        pytest.skip("libfaketime is not installed (Debian: apt-get install libfaketime)")
    return {
        **env,
        "LD_PRELOAD": str(found),
        "FAKETIME": offset,
        "FAKETIME_DONT_RESET": "1",  # child processes keep the parent's offset
    }

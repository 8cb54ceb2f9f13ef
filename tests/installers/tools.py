"""Debian tools the installer tests need: present, or a failure under CI and a skip elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest


def need(tool: str, package: str) -> str:
    """The tool's path; under CI a missing tool fails the test, elsewhere it skips it."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"{tool} is not installed (Debian: apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

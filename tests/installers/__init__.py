"""Tests of the installers: bootstrapper, locks, pinned uv, packages."""

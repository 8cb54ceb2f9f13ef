"""Where ganfriends keeps its files on this computer (platformdirs locations)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "ganfriends"


def data_dir() -> Path:
    """Per-user data: the demo database lives here. GANFRIENDS_DATA_DIR overrides it."""
    return Path(os.environ.get("GANFRIENDS_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """Per-user cache: downloaded dataset shards. GANFRIENDS_CACHE_DIR overrides it."""
    return Path(os.environ.get("GANFRIENDS_CACHE_DIR") or platformdirs.user_cache_dir(APP_NAME))


def log_dir() -> Path:
    return Path(os.environ.get("GANFRIENDS_LOG_DIR") or platformdirs.user_log_dir(APP_NAME))


def demo_db_url() -> str:
    return f"sqlite:///{data_dir() / 'demo.db'}"

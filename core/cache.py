"""On-disk cache of dataset shards, addressed by sha256 and capped in size (oldest used go first)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = (
    4 * 1024**3
)  # 4 GiB: holds CelebA at 64×64 (2.3 GiB), so a worker downloads it once


class ShardCache:
    """Files named by their sha256; a read verifies the hash, so a corrupt file is a miss."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.directory / f"{sha256}.bin"

    def get(self, sha256: str) -> bytes | None:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            log.warning("cached shard %s is corrupt; fetching it again", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # mark as recently used
        return data

    def put(self, sha256: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("shard bytes do not match their sha256")
        if len(data) > self.max_bytes:
            return  # larger than the whole cache: keep it in memory only
        self._evict(room_for=len(data))
        tmp = self._path(sha256).with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(self._path(sha256))  # atomic: readers never see half a file

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.bin"))

    def _evict(self, room_for: int) -> None:
        files = sorted(self.directory.glob("*.bin"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for path in files:
            if total + room_for <= self.max_bytes:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)

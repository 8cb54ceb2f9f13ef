"""The shard cache: content-addressed, verified on read, capped in size."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from core.cache import ShardCache


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_round_trip_and_miss(tmp_path):
    cache = ShardCache(tmp_path, max_bytes=1000)
    assert cache.get(sha(b"a")) is None
    cache.put(sha(b"a"), b"a")
    assert cache.get(sha(b"a")) == b"a"


def test_corrupt_file_is_a_miss_and_is_removed(tmp_path):
    cache = ShardCache(tmp_path, max_bytes=1000)
    cache.put(sha(b"data"), b"data")
    (tmp_path / f"{sha(b'data')}.bin").write_bytes(b"evil")
    assert cache.get(sha(b"data")) is None
    assert not (tmp_path / f"{sha(b'data')}.bin").exists()


def test_wrong_hash_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        ShardCache(tmp_path).put(sha(b"x"), b"y")


def test_size_cap_evicts_least_recently_used(tmp_path):
    cache = ShardCache(tmp_path, max_bytes=250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    cache.put(sha(blobs[0]), blobs[0])
    cache.put(sha(blobs[1]), blobs[1])
    old = time.time() - 100
    os.utime(tmp_path / f"{sha(blobs[1])}.bin", (old, old))  # blob 1 is the least recently used
    cache.put(sha(blobs[2]), blobs[2])
    assert cache.size_bytes() <= 250
    assert cache.get(sha(blobs[1])) is None
    assert cache.get(sha(blobs[0])) == blobs[0] and cache.get(sha(blobs[2])) == blobs[2]

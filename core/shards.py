"""A worker's view of the run's dataset: the images of a unit, from cache or the database."""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from core.cache import ShardCache
from core.data import DatasetError, Shard, shard_images
from core.store import ShardLike, ShardRow, damaged_shard

log = logging.getLogger(__name__)

MEMORY_SHARDS = 64  # decoded shards kept in memory (each is at most shard_size images)


class ShardSource(Protocol):
    """What the fetcher needs from the store."""

    def shard_index(self) -> Sequence[ShardRow]: ...  # rows without data

    def shard(self, idx: int) -> ShardLike: ...


class ShardFetcher:
    """Maps dataset indices to shards; each shard is downloaded once, verified, then cached."""

    def __init__(self, source: ShardSource, cache: ShardCache) -> None:
        self._index = sorted(source.shard_index(), key=lambda s: s.index)
        self._source = source
        self._cache = cache
        self._starts: list[int] = []
        total = 0
        for shard in self._index:
            self._starts.append(total)
            total += shard.count
        self.dataset_size = total
        self._memory: OrderedDict[int, Tensor] = OrderedDict()
        self.bytes_downloaded = 0

    def images(self, indices: Sequence[int]) -> Tensor:
        """uint8 (len(indices), C, S, S) in the order given."""
        if not indices:
            raise ValueError("no images requested")
        out: Tensor | None = None
        for i, index in enumerate(indices):
            if not 0 <= index < self.dataset_size:
                raise IndexError(f"image {index} is outside the dataset of {self.dataset_size}")
            pos = bisect.bisect_right(self._starts, index) - 1
            image = self._shard_tensor(pos)[index - self._starts[pos]]
            if out is None:
                out = torch.empty((len(indices), *image.shape), dtype=torch.uint8)
            out[i] = image
        assert out is not None
        return out

    def _shard_tensor(self, pos: int) -> Tensor:
        if pos in self._memory:
            self._memory.move_to_end(pos)
            return self._memory[pos]
        meta = self._index[pos]
        data = self._cache.get(meta.sha256)
        downloaded = data is None
        if data is None:
            data = self._source.shard(meta.index).data
            self.bytes_downloaded += len(data)
        # Verifies length and sha256: a shard that does not match its index is never used.
        # The bytes passed their sha256 check (cache or store), so a mismatch is damage to the
        # row's count or image size in the database, which no fetching again repairs.
        try:
            tensor = shard_images(Shard(meta.index, meta.count, meta.image_size, data, meta.sha256))
        except DatasetError as exc:
            raise damaged_shard(meta.index, f"does not hold what its row declares ({exc})") from exc
        if downloaded:
            self._cache.put(meta.sha256, data)
        self._memory[pos] = tensor
        if len(self._memory) > MEMORY_SHARDS:
            self._memory.popitem(last=False)
        return tensor

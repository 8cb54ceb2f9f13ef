"""A worker's view of the run's dataset: the images of a unit, from cache or the database."""

from __future__ import annotations

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
        """uint8 (len(indices), C, S, S) in the order given.

        Gathered one shard at a time with tensor indexing, not image by image in Python: a
        fast worker (or `benchmarks.class_sim`'s volunteers, sharing one GIL) pays this every
        unit.
        """
        if not indices:
            raise ValueError("no images requested")
        wanted = torch.as_tensor(indices, dtype=torch.long)
        outside = (wanted < 0) | (wanted >= self.dataset_size)
        if bool(outside.any()):
            index = int(wanted[outside][0])
            raise IndexError(f"image {index} is outside the dataset of {self.dataset_size}")
        starts = torch.as_tensor(self._starts, dtype=torch.long)
        positions = torch.searchsorted(starts, wanted, right=True) - 1
        out: Tensor | None = None
        for pos in positions.unique().tolist():
            rows = (positions == pos).nonzero().squeeze(1)
            shard = self._shard_tensor(pos)
            if out is None:
                out = torch.empty((len(indices), *shard.shape[1:]), dtype=torch.uint8)
            out[rows] = shard[wanted[rows] - self._starts[pos]]
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

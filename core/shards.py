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

        Gathered one shard at a time with `index_select`, which copies whole images, then put
        back in the order asked: a fast worker (or `benchmarks.class_sim`'s volunteers, sharing
        one GIL) pays this every unit. Indexing assignment (`out[rows] = …`) copies uint8 byte
        by byte: ~36x slower for a 1,024-image unit of 32×32 images (4.7 ms against 0.13).
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
        by_shard = torch.argsort(positions, stable=True)  # the order the parts are gathered in
        parts = []
        for pos in positions.unique().tolist():  # ascending, as the stable sort groups them
            picked = wanted[by_shard[positions[by_shard] == pos]] - self._starts[pos]
            parts.append(self._shard_tensor(pos).index_select(0, picked))
        if len(parts) == 1:  # one shard: by_shard is the identity
            return parts[0]
        return torch.cat(parts).index_select(0, torch.argsort(by_shard))

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

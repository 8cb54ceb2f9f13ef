"""A worker's view of the run's dataset: the images of a unit, from cache or the database."""

from __future__ import annotations

import logging
import threading
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
        self._memory: OrderedDict[int, Tensor] = OrderedDict()  # a larger dataset's shards
        self._whole: Tensor | None = None  # a dataset of at most MEMORY_SHARDS shards
        self._filled: set[int] = set()  # the shards copied into it
        self._filling = threading.Lock()  # a unit claimed ahead gathers in its own thread
        self.bytes_downloaded = 0

    def images(self, indices: Sequence[int]) -> Tensor:
        """uint8 (len(indices), C, S, S) in the order given.

        A dataset of at most MEMORY_SHARDS shards is held as one tensor, filled a shard at a
        time as units need them, so a unit's images are one `index_select`: 1-5 ms for
        4,096 images of 4 shards against 11-15 ms and ~30 tensor calls gathered shard by
        shard (`benchmarks.data_and_quality_speed`; `benchmarks.class_sim`'s volunteers share
        one GIL, and every call gives it up and waits to take it back). Larger datasets are gathered one shard at a
        time with `index_select`, which copies whole images, then put back in the order
        asked. Indexing assignment (`out[rows] = …`) copies uint8 byte by byte: ~36x slower
        for a 1,024-image unit of 32×32 images (4.7 ms against 0.13).
        """
        if not indices:
            raise ValueError("no images requested")
        wanted = torch.as_tensor(indices, dtype=torch.long)
        low, high = (int(end) for end in torch.aminmax(wanted))
        if low < 0 or high >= self.dataset_size:
            index = low if low < 0 else high
            raise IndexError(f"image {index} is outside the dataset of {self.dataset_size}")
        if len(self._index) <= MEMORY_SHARDS:
            return self._whole_dataset(wanted).index_select(0, wanted)
        positions = self._positions(wanted)
        by_shard = torch.argsort(positions, stable=True)  # the order the parts are gathered in
        parts = []
        for pos in positions.unique().tolist():  # ascending, as the stable sort groups them
            picked = wanted[by_shard[positions[by_shard] == pos]] - self._starts[pos]
            parts.append(self._shard_tensor(pos).index_select(0, picked))
        if len(parts) == 1:  # one shard: by_shard is the identity
            return parts[0]
        return torch.cat(parts).index_select(0, torch.argsort(by_shard))

    def _positions(self, wanted: Tensor) -> Tensor:
        """The shard (its position in the index) of each wanted image."""
        starts = torch.as_tensor(self._starts, dtype=torch.long)
        return torch.searchsorted(starts, wanted, right=True) - 1

    def _whole_dataset(self, wanted: Tensor) -> Tensor:
        """The dataset as one tensor, with at least the shards holding `wanted` filled in."""
        if len(self._filled) < len(self._index):
            with self._filling:
                for pos in self._positions(wanted).unique().tolist():
                    if pos not in self._filled:
                        self._fill(pos)
        assert self._whole is not None
        return self._whole

    def _fill(self, pos: int) -> None:
        shard = self._load(pos)
        if self._whole is None:  # its pages are touched only as shards are copied in
            self._whole = torch.empty((self.dataset_size, *shard.shape[1:]), dtype=shard.dtype)
        if shard.shape[1:] != self._whole.shape[1:]:
            raise damaged_shard(
                self._index[pos].index,
                f"holds {shard.shape[-1]}-pixel images, the rest of the dataset "
                f"{self._whole.shape[-1]}-pixel ones",
            )
        self._whole[self._starts[pos] : self._starts[pos] + len(shard)] = shard
        self._filled.add(pos)

    def _shard_tensor(self, pos: int) -> Tensor:
        if pos in self._memory:
            self._memory.move_to_end(pos)
            return self._memory[pos]
        tensor = self._load(pos)
        self._memory[pos] = tensor
        if len(self._memory) > MEMORY_SHARDS:
            self._memory.popitem(last=False)
        return tensor

    def _load(self, pos: int) -> Tensor:
        """A shard's images, from the cache or the store, verified."""
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
        return tensor

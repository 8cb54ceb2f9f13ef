"""A worker's fetcher gives each unit's images in the order asked, from any mix of shards."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from core.cache import ShardCache
from core.data import Shard, synthetic_images, synthetic_shards
from core.shards import ShardFetcher
from core.store import ShardRow

COUNT, SIZE, SEED = 70, 8, 3


class Source:
    """Shards of uneven sizes (the last one shorter), counting what is downloaded."""

    def __init__(self) -> None:
        self.shards = list(synthetic_shards(COUNT, SIZE, SEED, shard_size=16))
        self.downloads: list[int] = []

    def shard_index(self) -> Sequence[ShardRow]:
        return [ShardRow(s.index, s.count, s.image_size, s.sha256) for s in self.shards]

    def shard(self, idx: int) -> Shard:
        self.downloads.append(idx)
        return self.shards[idx]


def test_images_come_in_the_order_asked_across_shards(tmp_path: Path) -> None:
    source = Source()
    fetcher = ShardFetcher(source, ShardCache(tmp_path / "cache"))
    everything = synthetic_images(COUNT, SIZE, SEED)
    order = random.Random(0).choices(range(COUNT), k=200)  # every shard, repeats, any order
    for indices in (
        order,
        [COUNT - 1],
        [0, 15, 16, 31, 32, 69, 0],
        [9, 3, 12],
        list(range(COUNT))[::-1],
    ):
        assert torch.equal(fetcher.images(indices), everything[indices])
    assert sorted(source.downloads) == list(range(len(source.shards)))  # each shard once


@pytest.mark.parametrize("indices", [[0, COUNT], [-1], [5, COUNT + 7, 2]])
def test_an_index_outside_the_dataset_is_refused(tmp_path: Path, indices: list[int]) -> None:
    fetcher = ShardFetcher(Source(), ShardCache(tmp_path / "cache"))
    with pytest.raises(IndexError, match="outside the dataset of 70"):
        fetcher.images(indices)


def test_no_indices_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images requested"):
        ShardFetcher(Source(), ShardCache(tmp_path / "cache")).images([])

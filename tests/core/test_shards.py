"""A worker's fetcher gives each unit's images in the order asked, from any mix of shards."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from core import shards
from core.cache import ShardCache
from core.data import Shard, synthetic_images, synthetic_shards
from core.shards import ShardFetcher
from core.store import DamagedData, ShardRow

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


@pytest.mark.parametrize("held", ["whole", "shard by shard"])
def test_images_come_in_the_order_asked_across_shards(
    tmp_path: Path, held: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if held == "shard by shard":  # a dataset of more shards than are kept in memory
        monkeypatch.setattr(shards, "MEMORY_SHARDS", 2)
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
    if held == "whole":
        assert sorted(source.downloads) == list(range(len(source.shards)))  # each shard once


def test_a_shard_of_another_image_size_is_damage(tmp_path: Path) -> None:
    source = Source()
    odd = next(iter(synthetic_shards(16, SIZE // 2, SEED, shard_size=16)))
    source.shards[2] = Shard(2, odd.count, odd.image_size, odd.data, odd.sha256)  # as its row says
    fetcher = ShardFetcher(source, ShardCache(tmp_path / "cache"))
    assert fetcher.images([1, 17]).shape == (2, 3, SIZE, SIZE)
    with pytest.raises(DamagedData, match=r"shard 2 .*4-pixel images, the rest of the dataset 8"):
        fetcher.images([40])


@pytest.mark.parametrize("indices", [[0, COUNT], [-1], [5, COUNT + 7, 2]])
def test_an_index_outside_the_dataset_is_refused(tmp_path: Path, indices: list[int]) -> None:
    fetcher = ShardFetcher(Source(), ShardCache(tmp_path / "cache"))
    with pytest.raises(IndexError, match="outside the dataset of 70"):
        fetcher.images(indices)


def test_no_indices_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images requested"):
        ShardFetcher(Source(), ShardCache(tmp_path / "cache")).images([])

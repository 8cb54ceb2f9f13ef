"""Which images and which noise seed make up each work unit: pure functions of the run seed.

Units are numbered globally from 0. With U units per epoch, unit u belongs to epoch u // U and
is slice u % U of that epoch's seeded permutation of the dataset, so every image is used exactly
once per epoch. A version consumes the next `num_workunits_per_update` unit numbers (the run's
cursor), so the weights after version v depend only on the run's settings and data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class UnitPlan:
    """One designated work unit: its global number, epoch, images and noise seed."""

    unit_index: int  # global unit number, 0, 1, 2, …
    epoch: int  # epoch the unit belongs to
    seed: int  # noise seed for this unit's samples (63-bit)
    sample_indices: tuple[int, ...]  # dataset indices of this unit's images, in order

    @property
    def sample_count(self) -> int:
        return len(self.sample_indices)


def units_per_epoch(dataset_size: int, images_per_unit: int) -> int:
    return math.ceil(dataset_size / images_per_unit)


@lru_cache(maxsize=4)
def _epoch_permutation(run_seed: int, epoch: int, dataset_size: int) -> tuple[int, ...]:
    seed = _derive_seed(run_seed, 1, epoch)
    perm = torch.randperm(dataset_size, generator=torch.Generator().manual_seed(seed))
    return tuple(perm.tolist())


def _derive_seed(*words: int) -> int:
    """A 63-bit seed from integers, well mixed (SeedSequence), stable across platforms."""
    state = np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def plan_unit(run_seed: int, dataset_size: int, images_per_unit: int, unit_index: int) -> UnitPlan:
    """The images and seed of global unit `unit_index`."""
    if dataset_size < 1:
        raise ValueError("the dataset is empty")
    per_epoch = units_per_epoch(dataset_size, images_per_unit)
    epoch, slot = divmod(unit_index, per_epoch)
    perm = _epoch_permutation(run_seed, epoch, dataset_size)
    indices = perm[slot * images_per_unit : (slot + 1) * images_per_unit]
    return UnitPlan(unit_index, epoch, _derive_seed(run_seed, 2, unit_index), indices)


def plan_version(
    run_seed: int, dataset_size: int, images_per_unit: int, cursor: int, units: int
) -> list[UnitPlan]:
    """The designated units of a version that starts at global unit number `cursor`."""
    return [plan_unit(run_seed, dataset_size, images_per_unit, cursor + i) for i in range(units)]

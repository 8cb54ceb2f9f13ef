"""The stale-gradient what-if is the reference trainer's math: at delay 0 bit for bit."""

from __future__ import annotations

import torch

from benchmarks.stale_gradients import train_stale
from core.data import synthetic_images
from core.reference import reference_train
from tests.factories import TINY_MODEL, tiny_settings


def test_no_delay_is_the_reference_trainer_and_a_delay_changes_the_weights() -> None:
    settings = tiny_settings()
    images = synthetic_images(60, 32, seed=0)
    reference = reference_train(TINY_MODEL, settings, images, 3).params
    fresh = train_stale(TINY_MODEL, settings, images, 0, 3).params
    assert all(torch.equal(fresh[name], reference[name]) for name in reference)
    first = reference_train(TINY_MODEL, settings, images, 1).params
    stale_first = train_stale(TINY_MODEL, settings, images, 1, 1).params
    assert all(torch.equal(stale_first[name], first[name]) for name in first)  # no older weights
    stale = train_stale(TINY_MODEL, settings, images, 1, 3).params
    assert not all(torch.equal(stale[name], reference[name]) for name in reference)

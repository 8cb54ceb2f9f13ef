"""The reference trainer: the protocol's math in one process, deterministic, and it learns."""

from __future__ import annotations

import pytest
import torch

from core.config import RunSettings
from core.data import synthetic_images
from core.model import ModelConfig, gan_from_parameters
from core.quality import fixed_noise, sliced_wasserstein
from core.reference import initial_state, reference_train
from core.schedule import plan_unit, plan_version, units_per_epoch
from core.training import calibrate_gan
from tests.factories import TINY_MODEL, random_images, tiny_settings


def test_every_image_is_used_once_per_epoch():
    per_epoch = units_per_epoch(50, 12)
    assert per_epoch == 5
    epoch0 = [i for u in range(per_epoch) for i in plan_unit(3, 50, 12, u).sample_indices]
    epoch1 = [
        i for u in range(per_epoch, 2 * per_epoch) for i in plan_unit(3, 50, 12, u).sample_indices
    ]
    assert sorted(epoch0) == sorted(epoch1) == list(range(50))
    assert epoch0 != epoch1  # a fresh permutation each epoch
    assert plan_unit(3, 50, 12, 4).sample_count == 2  # the epoch's last unit is shorter
    assert plan_unit(3, 50, 12, 1).seed != plan_unit(3, 50, 12, 2).seed


def test_versions_are_consecutive_units():
    units = plan_version(1, 100, 10, 7, 3)
    assert [u.unit_index for u in units] == [7, 8, 9]


def test_reference_trainer_is_bitwise_deterministic():
    settings = tiny_settings()
    images = random_images(40)
    a = reference_train(TINY_MODEL, settings, images, 3)
    b = reference_train(TINY_MODEL, settings, images, 3)
    assert (a.version, a.cursor) == (3, 9)
    assert all(torch.equal(a.params[n], b.params[n]) for n in a.params)
    assert a.adam.step == 3


def test_reference_trainer_depends_on_the_runs_micro_batch():
    images = random_images(40)
    a = reference_train(TINY_MODEL, tiny_settings(batch_size=4), images, 2)
    b = reference_train(TINY_MODEL, tiny_settings(batch_size=6), images, 2)
    assert any(not torch.equal(a.params[n], b.params[n]) for n in a.params)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_payload_precision_is_part_of_the_math(precision):
    images = random_images(40)
    fp32 = reference_train(TINY_MODEL, tiny_settings(), images, 2)
    low = reference_train(TINY_MODEL, tiny_settings(precision=precision), images, 2)
    assert any(not torch.equal(fp32.params[n], low.params[n]) for n in fp32.params)
    for name in fp32.params:
        torch.testing.assert_close(low.params[name], fp32.params[name], rtol=0.05, atol=2e-3)


@pytest.mark.slow
def test_reference_trainer_learns_the_synthetic_dataset():
    """The small model lowers the quality figure clearly within a CPU-minute budget."""
    model = ModelConfig(image_size=32, latent_dim=32, g_features=16, d_features=16)
    settings = RunSettings(
        images_per_work_unit=64,
        num_workunits_per_update=1,
        batch_size=64,
        lr=5e-4,
        compute_threads=2,
    )
    images = synthetic_images(4096, 32, seed=0)
    real = images[:512]

    def swd(params):
        gan = gan_from_parameters(model, params)
        calibrate_gan(gan, real[:256])
        with torch.no_grad():
            fake = gan.G(fixed_noise(model, 512, 1))
        return sliced_wasserstein(real, fake)

    before = swd(initial_state(model, settings).params)
    after = swd(reference_train(model, settings, images, 600).params)
    assert after < 0.6 * before, (before, after)

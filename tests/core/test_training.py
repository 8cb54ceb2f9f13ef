"""The gradient of one work unit, the weighted sum of units, Adam, and BatchNorm calibration."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from core.model import build_gan, parameters_of
from core.training import (
    AdamState,
    GradientSum,
    UnitCancelled,
    UnitMetrics,
    adam_step,
    calibrate_batchnorm,
    unit_gradients,
    unit_noise,
)
from tests.factories import TINY_MODEL, random_images


def textbook_gradients(gan, images, seed, batch_size):
    """Each network's gradient from its own loss only, the way a textbook writes it out."""
    gan = copy.deepcopy(gan).train()
    count = images.shape[0]
    noise = unit_noise(seed, count, gan.config.latent_dim)
    g_params, d_params = list(gan.G.parameters()), list(gan.D.parameters())
    g_grads = [torch.zeros_like(p) for p in g_params]
    d_grads = [torch.zeros_like(p) for p in d_params]
    for start in range(0, count, batch_size):
        real = images[start : start + batch_size].float() / 127.5 - 1
        z = noise[start : start + batch_size]
        fake = gan.G(z)
        out_real, out_fake = gan.D(real), gan.D(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            out_real, torch.ones_like(out_real), reduction="sum"
        ) + F.binary_cross_entropy_with_logits(
            out_fake, torch.zeros_like(out_fake), reduction="sum"
        )
        for acc, g in zip(d_grads, torch.autograd.grad(loss_d, d_params), strict=True):
            acc += g
        out = gan.D(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out), reduction="sum")
        for acc, g in zip(g_grads, torch.autograd.grad(loss_g, g_params), strict=True):
            acc += g
    names_g = [f"G.{n}" for n, _ in gan.G.named_parameters()]
    names_d = [f"D.{n}" for n, _ in gan.D.named_parameters()]
    grads = dict(zip(names_g, g_grads, strict=True)) | dict(zip(names_d, d_grads, strict=True))
    return {n: g / count for n, g in grads.items()}


@pytest.fixture
def gan():
    return build_gan(TINY_MODEL, seed=3)


def test_each_network_gets_the_gradient_of_its_own_loss_only(gan):
    images = random_images(10)
    expected = textbook_gradients(gan, images, seed=5, batch_size=4)
    got = unit_gradients(gan, images, seed=5, batch_size=4).grads
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-7, msg=name)


def test_gradients_are_a_mean_not_a_sum(gan):
    # A unit of the same images twice over (with matching micro-batches) has the same mean
    # gradient scale: a summed gradient would double.
    images = random_images(8)
    one = unit_gradients(gan, images, seed=1, batch_size=8).grads
    norm_one = torch.sqrt(torch.stack([(g**2).sum() for g in one.values()]).sum())
    two = unit_gradients(gan, torch.cat([images, images]), seed=1, batch_size=8).grads
    norm_two = torch.sqrt(torch.stack([(g**2).sum() for g in two.values()]).sum())
    assert 0.5 < float(norm_two / norm_one) < 1.5


def test_micro_batch_is_the_one_given(gan):
    images = random_images(8)
    by4 = unit_gradients(gan, images, seed=1, batch_size=4).grads
    by8 = unit_gradients(gan, images, seed=1, batch_size=8).grads
    # BatchNorm normalises per micro-batch, so the micro-batch changes the math.
    assert any(not torch.equal(by4[n], by8[n]) for n in by4)
    expected = textbook_gradients(gan, images, seed=1, batch_size=4)
    for name in expected:
        torch.testing.assert_close(by4[name], expected[name], rtol=1e-4, atol=1e-7)


def test_same_inputs_give_bitwise_equal_gradients(gan):
    images = random_images(10)
    a = unit_gradients(gan, images, seed=9, batch_size=4)
    b = unit_gradients(gan, images, seed=9, batch_size=4)
    assert all(torch.equal(a.grads[n], b.grads[n]) for n in a.grads)
    assert a.metrics == b.metrics


def test_noise_comes_from_the_units_seed(gan):
    images = random_images(10)
    a = unit_gradients(gan, images, seed=9, batch_size=4).grads
    b = unit_gradients(gan, images, seed=10, batch_size=4).grads
    assert any(not torch.equal(a[n], b[n]) for n in a)
    assert torch.equal(unit_noise(4, 6, 8), unit_noise(4, 6, 8))


def test_metrics_are_plausible(gan):
    metrics = unit_gradients(gan, random_images(10), seed=1, batch_size=4).metrics
    assert metrics.d_loss > 0 and metrics.g_loss > 0
    assert 0 < metrics.d_real < 1 and 0 < metrics.d_fake < 1


def test_stop_request_abandons_the_unit_between_micro_batches(gan):
    seen = []

    def progress(done, total):
        seen.append((done, total))

    with pytest.raises(UnitCancelled):
        unit_gradients(
            gan, random_images(12), 1, 4, progress=progress, should_stop=lambda: len(seen) >= 2
        )
    assert seen == [(4, 12), (8, 12)]


def test_gradient_sum_weighs_units_by_sample_count():
    metrics = UnitMetrics(1.0, 2.0, 0.5, 0.5)
    total = GradientSum()
    total.add({"w": torch.tensor([1.0, 2.0])}, metrics, 3)
    total.add({"w": torch.tensor([5.0, 6.0])}, UnitMetrics(3.0, 2.0, 0.5, 0.5), 1)
    torch.testing.assert_close(total.mean()["w"], torch.tensor([2.0, 3.0]))
    assert total.mean_metrics().d_loss == pytest.approx(1.5)
    assert (total.samples, total.units) == (4, 2)


def test_adam_step_matches_torch_optim_adam():
    gen = torch.Generator().manual_seed(0)
    params = {"a": torch.randn(5, 3, generator=gen), "b": torch.randn(7, generator=gen)}
    torch_params = [torch.nn.Parameter(p.clone()) for p in params.values()]
    opt = torch.optim.Adam(torch_params, lr=1e-2, betas=(0.5, 0.999), eps=1e-8, foreach=False)
    state = AdamState.zeros_like(params)
    for _ in range(3):
        grads = {n: torch.randn(p.shape, generator=gen) for n, p in params.items()}
        for tp, g in zip(torch_params, grads.values(), strict=True):
            tp.grad = g.clone()
        opt.step()
        params, state = adam_step(params, grads, state, lr=1e-2, beta1=0.5, beta2=0.999, eps=1e-8)
    for tp, p in zip(torch_params, params.values(), strict=True):
        torch.testing.assert_close(p, tp.detach(), rtol=1e-6, atol=1e-7)
    assert state.step == 3


def test_adam_state_round_trips_through_named_tensors():
    params = {"G.w": torch.ones(2), "D.w": torch.zeros(3)}
    state = AdamState(
        4, {n: p + 1 for n, p in params.items()}, {n: p + 2 for n, p in params.items()}
    )
    back = AdamState.from_tensors(4, state.to_tensors())
    assert back.step == 4 and all(torch.equal(back.exp_avg[n], state.exp_avg[n]) for n in params)


def test_calibrated_batchnorm_makes_eval_match_what_training_saw(gan):
    # Move the weights away from their initial values so running stats of 0/1 would be wrong.
    with torch.no_grad():
        for p in gan.G.parameters():
            p.mul_(3.0).add_(0.1)
    noise = unit_noise(0, 256, TINY_MODEL.latent_dim)
    train_out = gan.G.train()(noise)
    stale = copy.deepcopy(gan.G).eval()(noise)
    calibrate_batchnorm(gan.G, noise.split(64))
    assert not gan.G.training
    calibrated = gan.G(noise)
    err_calibrated = (calibrated - train_out).abs().mean()
    err_stale = (stale - train_out).abs().mean()
    assert err_calibrated < 0.02
    assert err_stale > 5 * err_calibrated


def test_parameters_exclude_batchnorm_buffers(gan):
    names = set(parameters_of(gan))
    assert not any("running" in n or "num_batches" in n for n in names)
    assert any(n.startswith("G.") for n in names) and any(n.startswith("D.") for n in names)

"""Unit kinds: gradient units, and local-step units with their outer Nesterov step."""

from __future__ import annotations

import pytest
import torch

from core.model import build_gan, parameters_of
from core.training import AdamState, UnitCancelled, adam_step, unit_gradients
from core.unit_kinds import GradientUnits, LocalStepUnits, unit_kind
from tests.factories import TINY_MODEL, random_images, tiny_settings


def test_the_run_setting_chooses_the_kind() -> None:
    assert isinstance(unit_kind(tiny_settings()), GradientUnits)
    kind = unit_kind(tiny_settings(inner_steps=3))
    assert isinstance(kind, LocalStepUnits) and kind.inner_steps == 3


def test_local_steps_are_inner_adam_steps_over_consecutive_slices() -> None:
    settings = tiny_settings(inner_steps=3, lr=1e-3)
    gan = build_gan(TINY_MODEL, 0)
    start = parameters_of(gan)
    images = random_images(12)
    result = LocalStepUnits(3).compute(gan, images, 11, settings)
    # The same by hand: three slices of 4 images, seeds 11, 12, 13, a fresh inner Adam.
    params, inner = dict(start), AdamState.zeros_like(start)
    manual = build_gan(TINY_MODEL, 0)
    for h in range(3):
        grads = unit_gradients(manual, images[4 * h : 4 * h + 4], 11 + h, 4).grads
        params, inner = adam_step(params, grads, inner, lr=1e-3, beta1=0.5, beta2=0.999, eps=1e-8)
        with torch.no_grad():
            for name, p in manual.named_parameters():
                p.copy_(params[name])
    assert all(torch.equal(result.grads[n], params[n] - start[n]) for n in start)
    assert result.sample_count == 12
    # The model the engine keeps is left at the version's weights.
    assert all(torch.equal(p, start[n]) for n, p in gan.named_parameters())


def test_a_cancelled_local_steps_unit_leaves_the_model_at_the_versions_weights() -> None:
    gan = build_gan(TINY_MODEL, 0)
    start = parameters_of(gan)
    calls = iter(range(100))
    with pytest.raises(UnitCancelled):  # stop after the first inner step
        LocalStepUnits(3).compute(
            gan,
            random_images(12),
            1,
            tiny_settings(inner_steps=3),
            should_stop=lambda: next(calls) >= 1,
        )
    assert all(torch.equal(p, start[n]) for n, p in gan.named_parameters())


def test_the_outer_step_is_torch_nesterov_sgd_on_the_negated_mean_change() -> None:
    settings = tiny_settings(inner_steps=4, outer_lr=0.7, outer_momentum=0.9)
    kind = LocalStepUnits(4)
    gen = torch.Generator().manual_seed(3)
    params = {"w": torch.randn(5, generator=gen)}
    reference = torch.nn.Parameter(params["w"].clone())
    sgd = torch.optim.SGD([reference], lr=0.7, momentum=0.9, nesterov=True)
    state = kind.zeros_state(params)
    for _ in range(3):
        change = {"w": torch.randn(5, generator=gen) * 0.1}
        params, state = kind.apply(params, change, state, settings, kind.step_lr(settings))
        reference.grad = -change["w"]
        sgd.step()
        assert torch.allclose(params["w"], reference.detach(), rtol=0, atol=1e-6)
    assert state.step == 3 and state.exp_avg_sq == {}
    # The state survives the round trip through its tensors (stored as the optimizer state).
    again = AdamState.from_tensors(state.step, state.to_tensors())
    assert torch.equal(again.exp_avg["w"], state.exp_avg["w"])


def test_one_unit_with_outer_lr_1_and_no_momentum_is_plain_local_training() -> None:
    settings = tiny_settings(inner_steps=2, outer_lr=1.0, outer_momentum=0.0)
    kind = LocalStepUnits(2)
    gan = build_gan(TINY_MODEL, 0)
    start = parameters_of(gan)
    result = kind.compute(gan, random_images(12), 5, settings)
    params, _ = kind.apply(start, result.grads, kind.zeros_state(start), settings, 1.0)
    assert all(torch.allclose(params[n], start[n] + result.grads[n], atol=0) for n in start)


def test_a_local_step_units_progress_moves_through_its_inner_steps() -> None:
    """The volunteer's progress bar: images done across all inner steps, never going back."""
    settings = tiny_settings(inner_steps=3)
    seen: list[tuple[int, int]] = []
    LocalStepUnits(3).compute(
        build_gan(TINY_MODEL, 0),
        random_images(12),
        11,
        settings,
        progress=lambda d, t: seen.append((d, t)),
    )
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 12 and {t for _, t in seen} == {12}
    assert len({d for d in done if d < 12}) >= 2  # it moved inside the unit, not only at its end

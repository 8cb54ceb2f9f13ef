"""Unit kinds: gradient units, and local-step units (inner SGD) with their outer Adam step."""

from __future__ import annotations

import pytest
import torch

from core.model import build_gan, parameters_of
from core.training import AdamState, UnitCancelled, unit_gradients
from core.unit_kinds import GradientUnits, LocalStepUnits, sgd_step, unit_kind
from tests.factories import TINY_MODEL, random_images, tiny_settings


def test_the_run_setting_chooses_the_kind() -> None:
    assert isinstance(unit_kind(tiny_settings()), GradientUnits)
    kind = unit_kind(tiny_settings(inner_steps=3))
    assert isinstance(kind, LocalStepUnits) and kind.inner_steps == 3


def test_local_steps_are_inner_sgd_steps_over_consecutive_slices() -> None:
    settings = tiny_settings(inner_steps=3, inner_lr=0.05)
    gan = build_gan(TINY_MODEL, 0)
    start = parameters_of(gan)
    images = random_images(12)
    result = LocalStepUnits(3).compute(gan, images, 11, settings)
    # The same by hand: three slices of 4 images, seeds 11, 12, 13, plain SGD steps.
    params = dict(start)
    manual = build_gan(TINY_MODEL, 0)
    for h in range(3):
        grads = unit_gradients(manual, images[4 * h : 4 * h + 4], 11 + h, 4).grads
        params = {n: p.sub(grads[n], alpha=0.05) for n, p in params.items()}
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


def test_the_outer_step_is_torch_adam_on_the_negated_mean_change() -> None:
    settings = tiny_settings(inner_steps=4, outer_lr=0.004, outer_momentum=0.5, beta2=0.99)
    kind = LocalStepUnits(4)
    gen = torch.Generator().manual_seed(3)
    params = {"w": torch.randn(5, generator=gen)}
    reference = torch.nn.Parameter(params["w"].clone())
    adam = torch.optim.Adam([reference], lr=0.004, betas=(0.5, 0.99), eps=settings.eps)
    state = kind.zeros_state(params)
    for _ in range(3):
        change = {"w": torch.randn(5, generator=gen) * 0.1}
        params, state = kind.apply(params, change, state, settings, kind.step_lr(settings))
        reference.grad = -change["w"]
        adam.step()
        assert torch.allclose(params["w"], reference.detach(), rtol=0, atol=1e-6)
    assert state.step == 3
    # The state survives the round trip through its tensors (stored as the optimizer state).
    again = AdamState.from_tensors(state.step, state.to_tensors())
    assert torch.equal(again.exp_avg["w"], state.exp_avg["w"])
    assert torch.equal(again.exp_avg_sq["w"], state.exp_avg_sq["w"])


def test_the_outer_state_does_not_depend_on_the_outer_lr() -> None:
    # The coordinator redoes a close after a crash with the lr it then reads.
    settings = tiny_settings(inner_steps=2)
    kind = LocalStepUnits(2)
    params = {"w": torch.ones(3)}
    change = {"w": torch.tensor([0.1, -0.2, 0.3])}
    _, slow = kind.apply(params, change, kind.zeros_state(params), settings, 0.001)
    _, fast = kind.apply(params, change, kind.zeros_state(params), settings, 0.1)
    assert torch.equal(slow.exp_avg["w"], fast.exp_avg["w"])
    assert torch.equal(slow.exp_avg_sq["w"], fast.exp_avg_sq["w"])


def test_sgd_step_does_not_mutate() -> None:
    params = {"w": torch.ones(2)}
    stepped = sgd_step(params, {"w": torch.tensor([1.0, -2.0])}, 0.5)
    assert torch.equal(stepped["w"], torch.tensor([0.5, 2.0]))
    assert torch.equal(params["w"], torch.ones(2))


def test_a_run_with_the_old_outer_nesterov_state_is_refused() -> None:
    kind = LocalStepUnits(2)
    params = {"w": torch.ones(3)}
    nesterov = AdamState(4, {"w": torch.zeros(3)}, {})  # as stored before the outer Adam
    with pytest.raises(ValueError, match="start a new run"):
        kind.apply(params, {"w": torch.zeros(3)}, nesterov, tiny_settings(inner_steps=2), 0.01)


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

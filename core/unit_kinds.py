"""Unit kinds: what a worker computes for a unit, and how the coordinator folds a version's
results into the next weights. Chosen once from the run's settings (`unit_kind`).

- `GradientUnits` (`inner_steps = 1`, the default): a unit returns the gradients of its samples
  at version v's weights; the coordinator averages them and takes one Adam step (exact
  synchronous training).
- `LocalStepUnits` (`inner_steps = H > 1`, local SGD in the pattern of DiLoCo, arXiv
  2311.08105): a unit takes H inner SGD steps (`inner_lr`) from version v's weights over H
  consecutive slices of its images and returns the parameter change; the coordinator averages
  the changes and takes one outer Adam step on their negation, with `outer_lr`, β1
  `outer_momentum` and the run's `beta2` and `eps`. Workers send one payload per H steps.

The worker, the coordinator and the reference trainer call the kind; none of them asks which
kind it has. Both kinds are pure functions of tensors and seeds, so both are deterministic and
verified bitwise by the same parity tests.

GAN choices for local steps (see benchmarks/README.md, local_steps): each inner step updates D
and G together from the same weights, each from its own loss, exactly as a gradient unit does;
BatchNorm normalises every micro-batch by its own statistics, as always. The inner optimizer is
plain SGD, so a unit has no optimizer state (it may go to any worker, and must not depend on
which one); Adam's moments live only in the coordinator's outer step, which keeps them across
versions as exact training does. Measured on the demo model, inner Adam with fresh state in
every unit (DiLoCo's inner optimizer, used here before) lost quality per image at every outer
setting tried, also with smaller or warmed-up first steps; inner SGD with the outer Adam
matched or beat exact units per image at 8 and 32 units per version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor

from core.config import RunSettings
from core.model import GAN, parameters_of
from core.training import (
    AdamState,
    ProgressFn,
    StopFn,
    UnitMetrics,
    UnitResult,
    adam_step,
    unit_gradients,
)


class UnitKind(Protocol):
    """One way of computing units and folding their mean into the next version."""

    name: str

    def compute(
        self,
        gan: GAN,
        images: Tensor,
        seed: int,
        settings: RunSettings,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> UnitResult:
        """The unit's result tensors (named like the parameters, fp32), metrics and count."""
        ...

    def zeros_state(self, params: Mapping[str, Tensor]) -> AdamState:
        """The optimizer state before the first version."""
        ...

    def step_lr(self, settings: RunSettings) -> float:
        """The learning rate the coordinator's step uses (recorded with the weights)."""
        ...

    def apply(
        self,
        params: Mapping[str, Tensor],
        mean: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
        lr: float,
    ) -> tuple[dict[str, Tensor], AdamState]:
        """The next weights and state from the sample-weighted mean of the version's results.

        The state must not depend on `lr`, so that it can be redone after a crash (see the
        coordinator's `OptimizerStates._redo_last_step`).
        """
        ...


class GradientUnits:
    """Exact synchronous training: gradients at v's weights, one Adam step per version."""

    name = "gradients"

    def compute(
        self,
        gan: GAN,
        images: Tensor,
        seed: int,
        settings: RunSettings,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> UnitResult:
        return unit_gradients(
            gan, images, seed, settings.batch_size, progress=progress, should_stop=should_stop
        )

    def zeros_state(self, params: Mapping[str, Tensor]) -> AdamState:
        return AdamState.zeros_like(params)

    def step_lr(self, settings: RunSettings) -> float:
        return settings.lr

    def apply(
        self,
        params: Mapping[str, Tensor],
        mean: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
        lr: float,
    ) -> tuple[dict[str, Tensor], AdamState]:
        return adam_step(
            params, mean, state, lr=lr, beta1=settings.beta1, beta2=settings.beta2, eps=settings.eps
        )


class LocalStepUnits:
    """H inner SGD steps per unit; the averaged change is applied by an outer Adam step."""

    name = "local steps"

    def __init__(self, inner_steps: int) -> None:
        self.inner_steps = inner_steps

    def compute(
        self,
        gan: GAN,
        images: Tensor,
        seed: int,
        settings: RunSettings,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> UnitResult:
        """Parameter change after H inner steps; the unit's images are cut into H consecutive
        slices (the first ones one image longer when they do not divide evenly), inner step h
        uses slice h with the noise seed `seed + h`."""
        start = parameters_of(gan)
        count = images.shape[0]
        try:
            params, sums = self._inner_steps(gan, images, seed, settings, progress, should_stop)
        finally:
            _load_into(gan, start)  # the engine's model stays at version v's weights
        deltas = {name: params[name] - start[name] for name in start}
        return UnitResult(deltas, UnitMetrics(*(sums / count).tolist()), count)

    def _inner_steps(
        self,
        gan: GAN,
        images: Tensor,
        seed: int,
        settings: RunSettings,
        progress: ProgressFn | None,
        should_stop: StopFn | None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """The weights after the inner steps (also left in `gan`) and the metrics' sums."""
        params = parameters_of(gan)
        count = images.shape[0]
        slices = torch.tensor_split(torch.arange(count), min(self.inner_steps, count))
        sums = torch.zeros(4, dtype=torch.float64)  # per-sample sums of the metrics
        done = 0
        for h, index in enumerate(slices):
            batch = images[index]

            def inner_progress(n: int, _total: int, offset: int = done) -> None:
                if progress is not None:
                    progress(offset + n, count)

            result = unit_gradients(
                gan,
                batch,
                seed + h,
                settings.batch_size,
                progress=inner_progress,
                should_stop=should_stop,
            )
            params = sgd_step(params, result.grads, settings.inner_lr)
            _load_into(gan, params)
            m = result.metrics
            sums += torch.tensor([m.d_loss, m.g_loss, m.d_real, m.d_fake], dtype=torch.float64) * (
                result.sample_count
            )
            done += result.sample_count
        return params, sums

    def zeros_state(self, params: Mapping[str, Tensor]) -> AdamState:
        return AdamState.zeros_like(params)

    def step_lr(self, settings: RunSettings) -> float:
        return settings.outer_lr

    def apply(
        self,
        params: Mapping[str, Tensor],
        mean: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
        lr: float,
    ) -> tuple[dict[str, Tensor], AdamState]:
        """Outer Adam on the pseudo-gradient g = -(mean change), as torch.optim.Adam with
        betas (outer_momentum, beta2)."""
        if state.exp_avg_sq.keys() != params.keys():
            raise ValueError(
                "this run's optimizer state is an outer Nesterov momentum buffer: local-steps "
                "runs created before the outer step became Adam (2026-12-05) cannot go on; "
                "start a new run"
            )
        pseudo = {name: change.neg() for name, change in mean.items()}
        return adam_step(
            params,
            pseudo,
            state,
            lr=lr,
            beta1=settings.outer_momentum,
            beta2=settings.beta2,
            eps=settings.eps,
        )


def sgd_step(
    params: Mapping[str, Tensor], grads: Mapping[str, Tensor], lr: float
) -> dict[str, Tensor]:
    """One plain SGD step, θ - lr·g; no mutation."""
    return {name: p.sub(grads[name], alpha=lr) for name, p in params.items()}


def unit_kind_text(settings: RunSettings) -> str:
    """What a unit of this run computes, for people (`status`, the app)."""
    if settings.inner_steps == 1:
        return "gradients (exact synchronous training)"
    return (
        f"local steps ({settings.inner_steps} inner SGD steps of lr {settings.inner_lr:g} per "
        f"unit, outer Adam lr {settings.outer_lr:g}, beta1 {settings.outer_momentum:g})"
    )


def _load_into(gan: GAN, params: Mapping[str, Tensor]) -> None:
    with torch.no_grad():
        for name, p in gan.named_parameters():
            p.copy_(params[name])


def unit_kind(settings: RunSettings) -> UnitKind:
    """The kind of unit a run computes, from its `inner_steps`."""
    if settings.inner_steps == 1:
        return GradientUnits()
    return LocalStepUnits(settings.inner_steps)

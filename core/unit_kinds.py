"""Unit kinds: what a worker computes for a unit, and how the coordinator folds a version's
results into the next weights. Chosen once from the run's settings (`unit_kind`).

- `GradientUnits` (`inner_steps = 1`, the default): a unit returns the gradients of its samples
  at version v's weights; the coordinator averages them and takes one Adam step (exact
  synchronous training).
- `LocalStepUnits` (`inner_steps = H > 1`, the DiLoCo pattern, arXiv 2311.08105): a unit takes
  H inner Adam steps from version v's weights over H consecutive slices of its images and
  returns the parameter change; the coordinator averages the changes and applies an outer
  Nesterov SGD step with `outer_lr` and `outer_momentum`. Workers send one payload per H steps.

The worker, the coordinator and the reference trainer call the kind; none of them asks which
kind it has. Both kinds are pure functions of tensors and seeds, so both are deterministic and
verified bitwise by the same parity tests.

GAN choices for local steps (see benchmarks/README.md, local_steps): each inner step updates D
and G together from the same weights, each from its own loss, exactly as a gradient unit does;
the inner Adam state starts fresh in every unit (a unit may go to any worker, and must not
depend on which one); BatchNorm normalises every micro-batch by its own statistics, as always.
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
        coordinator's `_redo_last_step`).
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
    """H inner Adam steps per unit; the averaged change is applied by outer Nesterov SGD."""

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
        inner = AdamState.zeros_like(params)
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
            params, inner = adam_step(
                params,
                result.grads,
                inner,
                lr=settings.lr,
                beta1=settings.beta1,
                beta2=settings.beta2,
                eps=settings.eps,
            )
            _load_into(gan, params)
            m = result.metrics
            sums += torch.tensor([m.d_loss, m.g_loss, m.d_real, m.d_fake], dtype=torch.float64) * (
                result.sample_count
            )
            done += result.sample_count
        return params, sums

    def zeros_state(self, params: Mapping[str, Tensor]) -> AdamState:
        # The outer momentum buffer rides in `exp_avg`; Nesterov SGD has no second moment.
        return AdamState(0, {n: torch.zeros_like(p) for n, p in params.items()}, {})

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
        """Outer Nesterov SGD on the pseudo-gradient g = -(mean change), as torch.optim.SGD
        with nesterov=True: buf = μ·buf + g; θ ← θ - lr·(g + μ·buf)."""
        mu = settings.outer_momentum
        new_params, buffers = {}, {}
        for name, p in params.items():
            g = mean[name].neg()
            buffers[name] = state.exp_avg[name].mul(mu).add_(g)
            new_params[name] = p.sub(g.add(buffers[name], alpha=mu), alpha=lr)
        return new_params, AdamState(state.step + 1, buffers, {})


def unit_kind_text(settings: RunSettings) -> str:
    """What a unit of this run computes, for people (`status`, the app)."""
    if settings.inner_steps == 1:
        return "gradients (exact synchronous training)"
    return (
        f"local steps ({settings.inner_steps} inner Adam steps per unit, outer Nesterov "
        f"lr {settings.outer_lr:g}, momentum {settings.outer_momentum:g})"
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

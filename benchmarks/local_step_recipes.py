"""The local-steps recipes `benchmarks.local_steps` compared before one was adopted.

A recipe is a local-steps kind with another inner optimizer (fresh in every unit) or another
outer step. The adopted one (inner SGD, outer Adam: `core.unit_kinds.LocalStepUnits`) runs
through the protocol's own kind; the others are swapped in for it by the benchmark, so that
the measurements of the variants that lost (benchmarks/README.md, local_steps) can be redone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from core.config import RunSettings
from core.model import GAN, parameters_of
from core.training import AdamState, adam_step, unit_gradients
from core.unit_kinds import LocalStepUnits, _load_into, sgd_step

# adam: fresh Adam (DiLoCo's inner optimizer); adam-m: its first moment not bias-corrected
# (first step lr/2·sign(g)); warmup: Adam with lr·(h+1)/H; sgd; sgdm: heavy ball, momentum β1.
INNER = ("adam", "adam-m", "warmup", "sgd", "sgdm")
OUTER = ("nesterov", "adam")  # nesterov: torch's Nesterov SGD (momentum 0: averaging); adam


@dataclass(frozen=True)
class Recipe:
    inner: str  # one of INNER
    outer: str  # one of OUTER
    adam_lr_scale: float = 1.0  # inner Adam variants: × the run's lr (0 = 1/sqrt(H))

    @property
    def adopted(self) -> bool:
        return (self.inner, self.outer) == ("sgd", "adam")


class RecipeUnits(LocalStepUnits):
    """Local steps with the recipe's inner optimizer and outer step.

    Inner SGD steps use `inner_lr`, inner Adam steps `lr` × `adam_lr_scale`; the outer step
    uses `outer_lr` and `outer_momentum` (Nesterov's μ, or Adam's β1)."""

    def __init__(self, inner_steps: int, recipe: Recipe) -> None:
        super().__init__(inner_steps)
        self.recipe = recipe

    def _inner_steps(
        self, gan: GAN, images: Tensor, seed: int, settings: RunSettings, *_: object
    ) -> tuple[dict[str, Tensor], Tensor]:
        """As `LocalStepUnits._inner_steps`, with the recipe's inner step (no progress)."""
        params = parameters_of(gan)
        inner = AdamState.zeros_like(params)
        count = images.shape[0]
        slices = torch.tensor_split(torch.arange(count), min(self.inner_steps, count))
        sums = torch.zeros(4, dtype=torch.float64)
        for h, index in enumerate(slices):
            result = unit_gradients(gan, images[index], seed + h, settings.batch_size)
            params, inner = self._inner_step(h, params, result.grads, inner, settings)
            _load_into(gan, params)
            m = result.metrics
            sums += torch.tensor([m.d_loss, m.g_loss, m.d_real, m.d_fake], dtype=torch.float64) * (
                result.sample_count
            )
        return params, sums

    def _inner_step(
        self,
        h: int,
        params: dict[str, Tensor],
        grads: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
    ) -> tuple[dict[str, Tensor], AdamState]:
        kind, b1, b2 = self.recipe.inner, settings.beta1, settings.beta2
        lr = settings.lr * (self.recipe.adam_lr_scale or self.inner_steps**-0.5)
        if kind in ("adam", "warmup"):
            scale = (h + 1) / self.inner_steps if kind == "warmup" else 1.0
            return adam_step(
                params, grads, state, lr=lr * scale, beta1=b1, beta2=b2, eps=settings.eps
            )
        if kind == "adam-m":  # Adam without the first moment's bias correction
            bias1 = 1 - b1 ** (state.step + 1)
            return adam_step(
                params, grads, state, lr=lr * bias1, beta1=b1, beta2=b2, eps=settings.eps
            )
        if kind == "sgd":
            return sgd_step(params, grads, settings.inner_lr), state
        bufs = {n: state.exp_avg[n].mul(b1).add_(grads[n]) for n in params}  # sgdm
        return sgd_step(params, bufs, settings.inner_lr), AdamState(state.step + 1, bufs, {})

    def apply(
        self,
        params: Mapping[str, Tensor],
        mean: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
        lr: float,
    ) -> tuple[dict[str, Tensor], AdamState]:
        if self.recipe.outer == "adam":
            return super().apply(params, mean, state, settings, lr)
        mu, new, bufs = settings.outer_momentum, {}, {}  # torch.optim.SGD(nesterov=True)
        for n, p in params.items():
            g = mean[n].neg()
            bufs[n] = state.exp_avg[n].mul(mu).add_(g)
            new[n] = p.sub(g.add(bufs[n], alpha=mu), alpha=lr)
        return new, AdamState(state.step + 1, bufs, state.exp_avg_sq)

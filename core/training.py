"""The training math: gradients of one work unit, their weighted sum, and the Adam step.

Pure functions of tensors: no database, files or printing. `core.reference` runs the whole
protocol with them in one process; workers and the coordinator run the same functions.

BatchNorm: while computing gradients both networks are in train mode, so every micro-batch is
normalised by its own statistics and running statistics play no part in training. They are
therefore not part of the published weights at all: whenever a model is *evaluated* (sample
grids, the quality figure, an exported model) `calibrate_batchnorm` recomputes them from the
current weights by averaging the batch statistics of fixed inputs (precise BatchNorm,
cumulative average). So evaluation sees exactly the normalisation the trained model used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model import GAN

ProgressFn = Callable[[int, int], None]  # (samples done, samples in unit)
StopFn = Callable[[], bool]  # True once the unit should be abandoned


class UnitCancelled(Exception):
    """The caller asked to stop between micro-batches; no result exists for the unit."""


@dataclass(frozen=True)
class UnitMetrics:
    """Per-sample means over one unit (or one version, once aggregated)."""

    d_loss: float  # discriminator BCE loss, real + fake terms
    g_loss: float  # non-saturating generator BCE loss
    d_real: float  # mean D(x): probability D gives real images
    d_fake: float  # mean D(G(z)): probability D gives generated images

    def as_dict(self) -> dict[str, float]:
        return {
            "d_loss": self.d_loss,
            "g_loss": self.g_loss,
            "d_real": self.d_real,
            "d_fake": self.d_fake,
        }


@dataclass(frozen=True)
class UnitResult:
    grads: dict[str, Tensor]  # named like the parameters (`G.…`, `D.…`), fp32, mean over samples
    metrics: UnitMetrics
    sample_count: int


def unit_noise(seed: int, count: int, latent_dim: int) -> Tensor:
    """The unit's noise, (count, latent_dim, 1, 1), drawn on the CPU so every device agrees."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(count, latent_dim, 1, 1, generator=gen)


def unit_gradients(
    gan: GAN,
    images: Tensor,
    seed: int,
    batch_size: int,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> UnitResult:
    """Gradients of one work unit at the weights currently in `gan`.

    images: uint8 (N, C, S, S), the unit's images in unit order. seed: the unit's noise seed.
    batch_size: the run's BatchNorm micro-batch (never the worker's choice). Both networks'
    gradients are taken at the same weights; each comes only from its own loss, summed over
    samples and divided by N, so units of any length average correctly by sample count.
    """
    count = images.shape[0]
    if count == 0:
        raise ValueError("a work unit needs at least one image")
    device = next(gan.parameters()).device
    noise = unit_noise(seed, count, gan.config.latent_dim)
    g_params, d_params = list(gan.G.parameters()), list(gan.D.parameters())
    gan.train()
    gan.zero_grad(set_to_none=True)
    sums = torch.zeros(4, dtype=torch.float64)  # d_loss, g_loss, d_real, d_fake
    for start in range(0, count, batch_size):
        if should_stop is not None and should_stop():
            raise UnitCancelled("stopped between micro-batches")
        stop = min(start + batch_size, count)
        real = images[start:stop].to(device, torch.float32).div_(127.5).sub_(1.0)  # [-1, 1]
        sums += _micro_batch(gan, real, noise[start:stop].to(device), g_params, d_params)
        if progress is not None:
            progress(stop, count)
    grads = {name: p.grad.div_(count) for name, p in gan.named_parameters() if p.grad is not None}
    gan.zero_grad(set_to_none=True)
    means = (sums / count).tolist()
    return UnitResult(grads, UnitMetrics(*means), count)


def _micro_batch(
    gan: GAN, real: Tensor, z: Tensor, g_params: list[nn.Parameter], d_params: list[nn.Parameter]
) -> Tensor:
    """Accumulate one micro-batch's summed losses into the .grad of G and D; return the sums."""
    d_real = gan.D(real)  # (B,) logits
    fake = gan.G(z)  # (B, C, S, S)
    # One forward of D on the fakes serves both losses. `backward(inputs=…)` keeps them apart:
    # the D loss accumulates only into D's parameters (as if `fake` were detached: autograd
    # never enters G for it), the G loss only into G's parameters.
    d_fake = gan.D(fake)  # (B,) logits
    loss_d = F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real), reduction="sum"
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake), reduction="sum")
    # Non-saturating generator loss: -log D(G(z)).
    loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake), reduction="sum")
    loss_d.backward(inputs=d_params, retain_graph=True)
    loss_g.backward(inputs=g_params)
    with torch.no_grad():
        return (
            torch.stack([loss_d, loss_g, torch.sigmoid(d_real).sum(), torch.sigmoid(d_fake).sum()])
            .double()
            .cpu()
        )


class GradientSum:
    """Sample-weighted mean of unit gradients, added one unit at a time in unit order.

    Holds one running sum, never all results, so memory does not grow with units per version.
    The order of `add` calls is the reduction order: callers add units in unit order.
    """

    def __init__(self) -> None:
        self._sum: dict[str, Tensor] | None = None
        self._metrics = torch.zeros(4, dtype=torch.float64)
        self.samples = 0
        self.units = 0

    def add(self, grads: Mapping[str, Tensor], metrics: UnitMetrics, sample_count: int) -> None:
        if self._sum is None:
            self._sum = {name: g.mul(sample_count) for name, g in grads.items()}
        else:
            if grads.keys() != self._sum.keys():
                raise ValueError("gradient names differ between units")
            for name, g in grads.items():
                self._sum[name].add_(g, alpha=sample_count)
        values = [metrics.d_loss, metrics.g_loss, metrics.d_real, metrics.d_fake]
        self._metrics += torch.tensor(values, dtype=torch.float64) * sample_count
        self.samples += sample_count
        self.units += 1

    def mean(self) -> dict[str, Tensor]:
        if self._sum is None:
            raise ValueError("no unit gradients were added")
        return {name: s / self.samples for name, s in self._sum.items()}

    def mean_metrics(self) -> UnitMetrics:
        return UnitMetrics(*(self._metrics / max(self.samples, 1)).tolist())


@dataclass(frozen=True)
class AdamState:
    """Adam's moments per parameter name and the number of steps taken.

    Also the local-steps kind's outer Adam state (`core.unit_kinds`).
    """

    step: int
    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]

    @classmethod
    def zeros_like(cls, params: Mapping[str, Tensor]) -> AdamState:
        return cls(
            0,
            {n: torch.zeros_like(p) for n, p in params.items()},
            {n: torch.zeros_like(p) for n, p in params.items()},
        )

    def to_tensors(self) -> dict[str, Tensor]:
        out = {f"exp_avg.{n}": t for n, t in self.exp_avg.items()}
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        return out

    @classmethod
    def from_tensors(cls, step: int, tensors: Mapping[str, Tensor]) -> AdamState:
        avg = {
            n.removeprefix("exp_avg."): t for n, t in tensors.items() if n.startswith("exp_avg.")
        }
        sq = {
            n.removeprefix("exp_avg_sq."): t
            for n, t in tensors.items()
            if n.startswith("exp_avg_sq.")
        }
        # No second moments: a momentum-only optimizer (the local-steps kind's outer SGD).
        if (sq and avg.keys() != sq.keys()) or len(avg) + len(sq) != len(tensors):
            raise ValueError("optimizer state tensors are inconsistent")
        return cls(step, avg, sq)


def adam_step(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: AdamState,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> tuple[dict[str, Tensor], AdamState]:
    """One Adam step (Kingma & Ba, as torch.optim.Adam) with the averaged gradient; no mutation."""
    if params.keys() != grads.keys():
        raise ValueError("gradients do not match the parameters")
    step = state.step + 1
    bias1, bias2 = 1 - beta1**step, 1 - beta2**step
    new_params, avg, sq = {}, {}, {}
    for name, p in params.items():
        g = grads[name]
        avg[name] = state.exp_avg[name].mul(beta1).add_(g, alpha=1 - beta1)
        sq[name] = state.exp_avg_sq[name].mul(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (sq[name].sqrt() / bias2**0.5).add_(eps)
        new_params[name] = p.addcdiv(avg[name], denom, value=-lr / bias1)
    return new_params, AdamState(step, avg, sq)


def calibrate_batchnorm(module: nn.Module, batches: Iterable[Tensor]) -> None:
    """Set every BatchNorm's running statistics to the average over `batches` (precise BN).

    Leaves the module in eval mode, so it then normalises exactly as it did on those batches.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: equal weight for every batch
    module.train()
    with torch.no_grad():
        for batch in batches:
            module(batch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    module.eval()


def calibrate_gan(gan: GAN, real_images: Tensor, *, seed: int = 0, batch_size: int = 64) -> None:
    """Calibrate G on fixed noise and D on real images (uint8), then leave both in eval mode."""
    count = max(real_images.shape[0], batch_size)
    noise = unit_noise(seed, count, gan.config.latent_dim)
    device = next(gan.parameters()).device
    calibrate_batchnorm(
        gan.G, (noise[i : i + batch_size].to(device) for i in range(0, count, batch_size))
    )
    reals = real_images.to(device, torch.float32) / 127.5 - 1
    calibrate_batchnorm(
        gan.D, (reals[i : i + batch_size] for i in range(0, reals.shape[0], batch_size))
    )


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run with exactly `count` intra-op CPU threads: CPU kernels sum in a thread-dependent order."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)

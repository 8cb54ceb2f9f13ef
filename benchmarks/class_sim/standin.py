"""The only simulated part of the class simulation: a unit's compute.

`StandInUnits` is a unit kind for the worker engine: it sleeps as long as the device profile
says the unit's images take, then returns a deterministic result of the real names and shapes
(a fixed random template scaled by a number drawn from the unit's seed: finite, well inside the
coordinator's norm bound). The coordinator folds results with the run's real kind. Nothing but
this benchmark constructs it: the worker engine takes it through a keyword argument that no
command or app sets (tests/benchmarks/test_class_sim.py checks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from core.config import RunSettings
from core.model import GAN
from core.training import AdamState, ProgressFn, StopFn, UnitCancelled, UnitMetrics, UnitResult
from core.unit_kinds import UnitKind, unit_kind

TEMPLATE_SCALE = 1e-3  # template values ~N(0, 1e-3): a 64×64 result's norm is about 2.5
SLEEP_SLICE_S = 0.05  # a stop or pause is noticed within this


class StandInUnits:
    """A unit kind whose compute takes `seconds_per_image` × images and is otherwise free."""

    name = "stand-in"

    def __init__(
        self,
        settings: RunSettings,
        seconds_per_image: float,
        on_computed: Callable[[float, float, int], None],
    ) -> None:
        self._real: UnitKind = unit_kind(settings)
        self.seconds_per_image = seconds_per_image
        self._on_computed = on_computed  # (start, end, images) of every finished compute
        self._template: dict[str, Tensor] | None = None
        self._lock = threading.Lock()

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
        count = images.shape[0]
        start = time.monotonic()
        end = start + self.seconds_per_image * count
        while (left := end - time.monotonic()) > 0:
            if should_stop is not None and should_stop():
                raise UnitCancelled("stopped")
            time.sleep(min(left, SLEEP_SLICE_S))
        scale = float(torch.rand(1, generator=torch.Generator().manual_seed(seed))) + 0.5
        grads = {name: t * scale for name, t in self._template_of(gan).items()}
        if progress is not None:
            progress(count, count)
        self._on_computed(start, time.monotonic(), count)
        return UnitResult(grads, UnitMetrics(1.3, 0.8, 0.6, 0.4), count)

    def _template_of(self, gan: GAN) -> dict[str, Tensor]:
        with self._lock:
            if self._template is None:
                gen = torch.Generator().manual_seed(0)
                self._template = {
                    name: torch.randn(p.shape, generator=gen) * TEMPLATE_SCALE
                    for name, p in gan.named_parameters()
                }
            return self._template

    def zeros_state(self, params: Mapping[str, Tensor]) -> AdamState:
        return self._real.zeros_state(params)

    def step_lr(self, settings: RunSettings) -> float:
        return self._real.step_lr(settings)

    def apply(
        self,
        params: Mapping[str, Tensor],
        mean: Mapping[str, Tensor],
        state: AdamState,
        settings: RunSettings,
        lr: float,
    ) -> tuple[dict[str, Tensor], AdamState]:
        return self._real.apply(params, mean, state, settings, lr)

"""The reference trainer: the whole distributed protocol in one process, with no database.

Seeded epoch permutations, unit slicing, `num_workunits_per_update` units per version summed in
unit order, payload precision applied exactly as encode/decode does, one Adam step per version.
The distributed run must reproduce its weights bitwise on one machine.

Settings an owner changes with `set` while the run goes on are replayed with `settings_at`:
the settings the coordinator read at the close of each version. As in the coordinator, the
close of version v takes its Adam step with those settings and designates version v+1's
units with them, so version v has `settings_at(v - 1).num_workunits_per_update` units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from core.codec import quantize
from core.config import RunSettings
from core.model import ModelConfig, build_gan, gan_from_parameters, parameters_of
from core.schedule import plan_version
from core.training import (
    AdamState,
    GradientSum,
    UnitMetrics,
    intra_op_threads,
)
from core.unit_kinds import unit_kind


@dataclass(frozen=True)
class TrainState:
    """Everything that defines where a run is: what the database holds for a run, in memory."""

    version: int  # number of Adam steps taken
    cursor: int  # next global unit number to designate
    params: dict[str, Tensor]  # trainable tensors, `G.…` / `D.…`
    adam: AdamState


def initial_state(model: ModelConfig, settings: RunSettings) -> TrainState:
    params = parameters_of(build_gan(model, settings.seed))
    return TrainState(0, 0, params, unit_kind(settings).zeros_state(params))


def train_version(
    state: TrainState,
    model: ModelConfig,
    settings: RunSettings,
    images: Tensor,
    *,
    units_in_version: int | None = None,
    computed_at: dict[str, Tensor] | None = None,
) -> tuple[TrainState, UnitMetrics]:
    """One version: gradients of its designated units, their weighted mean, one Adam step.

    `settings` are those of the version's close (the step's learning rate); the version has
    `units_in_version` units (default: `settings.num_workunits_per_update`). `computed_at`:
    the master weights the units are computed at, for what-ifs (default: the state's own,
    as every run does).
    """
    # Workers compute with the published weights: the master weights in weights_precision.
    weights = state.params if computed_at is None else computed_at
    gan = gan_from_parameters(model, quantize(weights, settings.weights_precision))
    count = settings.num_workunits_per_update if units_in_version is None else units_in_version
    units = plan_version(
        settings.seed,
        images.shape[0],
        settings.images_per_work_unit,
        state.cursor,
        count,
    )
    kind = unit_kind(settings)
    total = GradientSum()
    for unit in units:
        result = kind.compute(gan, images[list(unit.sample_indices)], unit.seed, settings)
        total.add(quantize(result.grads, settings.precision), result.metrics, unit.sample_count)
    params, adam = kind.apply(
        state.params, total.mean(), state.adam, settings, kind.step_lr(settings)
    )
    next_state = TrainState(state.version + 1, state.cursor + len(units), params, adam)
    return next_state, total.mean_metrics()


def reference_train(
    model: ModelConfig,
    settings: RunSettings,
    images: Tensor,
    versions: int,
    *,
    on_version: Callable[[TrainState, UnitMetrics], None] | None = None,
    settings_at: Callable[[int], RunSettings] | None = None,
) -> TrainState:
    """Train `versions` versions from the run's initial weights; images: uint8 (N, C, S, S).

    `settings_at(v)`: the settings in force at the close of version v, for runs whose live
    settings were changed with `set` (default: `settings` throughout).
    """
    state = initial_state(model, settings)
    at = settings_at or (lambda version: settings)
    with intra_op_threads(settings.compute_threads):
        for version in range(versions):
            designated = (settings if version == 0 else at(version - 1)).num_workunits_per_update
            state, metrics = train_version(
                state, model, at(version), images, units_in_version=designated
            )
            if on_version is not None:
                on_version(state, metrics)
    return state

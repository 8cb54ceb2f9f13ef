"""Run settings: the training protocol's knobs, validated once at the edge and then frozen."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.codec import PRECISIONS, Precision
from core.verification import POLICIES


class SettingsError(ValueError):
    """A setting that is unknown or out of range; the message names it and says what is allowed."""


@dataclass(frozen=True)
class RunSettings:
    """How a run trains. Fixed at `init`; keys in LIVE_KEYS may be changed with `set`."""

    images_per_work_unit: int = (
        256  # images in one work unit (the last unit of an epoch may be shorter)
    )
    num_workunits_per_update: int = 4  # units whose gradients make one Adam step (one version)
    batch_size: int = 64  # the BatchNorm micro-batch: fixed per run, never the worker's choice
    # Adam learning rate for both networks: 5x DCGAN's 2e-4, which at these batch sizes learned
    # far less per image on both shipped sets (benchmarks/README.md, "Defaults that learn")
    lr: float = 1e-3
    beta1: float = 0.5  # Adam beta1 (DCGAN default)
    beta2: float = 0.999  # Adam beta2
    eps: float = 1e-8  # Adam epsilon
    seed: int = 0  # run seed: initial weights, epoch permutations, unit noise seeds
    precision: Precision = "fp32"  # gradient payload precision: fp32, bf16 or fp16
    # Precision of the published weights workers compute with: fp32, or bf16 (half the bytes
    # every worker downloads per version; the coordinator keeps fp32 master weights).
    weights_precision: Precision = "fp32"
    # Unit kind: 1 = a unit returns gradients at the version's weights (exact synchronous
    # training); H > 1 = a unit takes H inner SGD steps and returns the parameter change,
    # which an outer Adam step applies (core.unit_kinds).
    inner_steps: int = 1
    inner_lr: float = 0.1  # inner SGD learning rate (local steps only)
    outer_lr: float = 0.008  # outer Adam learning rate (local steps only)
    outer_momentum: float = 0.5  # outer Adam beta1 (local steps only; beta2, eps: the run's)
    compute_threads: int = 1  # intra-op CPU threads per unit: fixed so results are bitwise stable
    lease_s: float = 60.0  # seconds a claim lasts without a heartbeat
    max_attempts: int = 3  # failed or expired attempts before a unit is parked
    backup_after_s: float = 30.0  # seconds a unit may run before an idle worker gets a backup copy
    max_payload_mb: float = 64.0  # size cap of one result payload, in MiB
    norm_factor: float = 50.0  # reject gradients whose norm exceeds this × the recent median
    sample_every: int = 25  # versions between sample grids and quality figures
    keep_versions: int = 3  # newest model versions kept (older ones pruned)
    checkpoint_every: int = 100  # every this many versions a checkpoint is kept longer
    keep_checkpoints: int = 3  # newest checkpoints kept
    keep_samples: int = 100  # newest sample grids kept
    verification: str = "off"  # off, quorum or adaptive: see core/verification.py
    trust_after: int = 10  # adaptive: confirmed units before a volunteer's results count unchecked
    spot_check: float = 0.05  # adaptive: share of a trusted volunteer's results still confirmed

    def __post_init__(self) -> None:
        for name, (low, high, low_open) in RANGES.items():
            _check_range(name, getattr(self, name), low, high, low_open)
        if self.verification not in POLICIES:
            raise SettingsError(
                f"verification must be one of {', '.join(POLICIES)}, not {self.verification!r}"
            )
        if self.precision not in PRECISIONS:
            raise SettingsError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        if self.weights_precision not in WEIGHTS_PRECISIONS:
            raise SettingsError(
                f"weights_precision must be one of {', '.join(WEIGHTS_PRECISIONS)}, "
                f"not {self.weights_precision!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSettings:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_changes(self, changes: Mapping[str, str]) -> RunSettings:
        """Apply `set KEY=VALUE` changes given as text; only LIVE_KEYS may change."""
        typed: dict[str, Any] = {}
        for key, text in changes.items():
            if key not in LIVE_KEYS:
                allowed = ", ".join(sorted(LIVE_KEYS))
                raise SettingsError(
                    f"{key!r} cannot be changed on a running run; allowed: {allowed}"
                )
            typed[key] = _parse_as(type(getattr(self, key)), key, text)
        return dataclasses.replace(self, **typed)


# Every number a run has, with its finite range: (lowest, highest, lowest excluded). They come
# from what the model can train with (an Adam lr above 1 or an eps above 1 never trains a DCGAN;
# beta/momentum at 1 never forgets) and what the machines can hold (units per version and the
# micro-batch bound memory; a result over 4 GiB cannot be stored; a lease under a second
# expires between heartbeats). `set`, `init --config` and the app all go through here.
RANGES: dict[str, tuple[float, float, bool]] = {
    "images_per_work_unit": (1, 65_536, False),
    "num_workunits_per_update": (1, 4_096, False),
    "batch_size": (1, 4_096, False),
    "lr": (0.0, 1.0, True),
    "beta1": (0.0, 0.999999, False),
    "beta2": (0.0, 0.999999, False),
    "eps": (0.0, 1.0, True),
    "seed": (0, 2**63 - 1, False),
    "compute_threads": (1, 256, False),
    "inner_steps": (1, 4_096, False),
    "inner_lr": (0.0, 10.0, True),
    "outer_lr": (0.0, 10.0, True),
    "outer_momentum": (0.0, 0.999999, False),
    "lease_s": (1.0, 86_400.0, False),
    "max_attempts": (1, 1_000, False),
    "backup_after_s": (0.0, 86_400.0, False),
    "max_payload_mb": (0.0, 4_096.0, True),
    "norm_factor": (0.0, 1e6, True),
    "sample_every": (1, 10**9, False),
    "keep_versions": (1, 1_000, False),
    "checkpoint_every": (1, 10**9, False),
    "keep_checkpoints": (1, 1_000, False),
    "keep_samples": (1, 100_000, False),
    "trust_after": (1, 10_000, False),
    "spot_check": (0.0, 1.0, False),
}
INTEGER_SETTINGS = frozenset(
    name for name, field in RunSettings.__dataclass_fields__.items() if field.type == "int"
)


def _check_range(name: str, value: Any, low: float, high: float, low_open: bool) -> None:
    whole = name in INTEGER_SETTINGS
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    if whole:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        if not ok:
            raise SettingsError(f"{name} must be a whole number in {shown}, not {value!r}")
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (low < value if low_open else low <= value) or not value <= high:
        raise SettingsError(f"{name} must be a number in {shown}, not {value!r}")


# fp16's range (6e-5 … 65504) does not hold every DCGAN weight; bf16 keeps fp32's range.
WEIGHTS_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")

# Keys `set` may change while a run goes on. Everything else defines the run's trajectory
# (unit slicing, seeds, micro-batch, precision) and is fixed at `init`.
LIVE_KEYS = frozenset(
    {
        "num_workunits_per_update",
        "lr",
        "outer_lr",
        "lease_s",
        "max_attempts",
        "backup_after_s",
        "max_payload_mb",
        "norm_factor",
        "sample_every",
        "keep_versions",
        "checkpoint_every",
        "keep_checkpoints",
        "keep_samples",
        "verification",
        "trust_after",
        "spot_check",
    }
)


def _parse_as(kind: type, key: str, text: str) -> Any:
    try:
        return kind(text) if kind is not int else int(text, 10)
    except ValueError:
        noun = "a whole number" if kind is int else "a number" if kind is float else "text"
        raise SettingsError(f"{key} must be {noun}, not {text!r}") from None

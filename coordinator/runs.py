"""Creating a run: read the config, ingest the dataset, write version 0 in one transaction."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coordinator.state import encode_optimizer_state, encode_weights
from core.codec import sha256_hex
from core.config import RunSettings, SettingsError
from core.data import (
    DatasetError,
    IngestReport,
    Shard,
    ingest_images,
    parse_dataset_spec,
    synthetic_shards,
)
from core.images import WHITE
from core.model import ModelConfig, build_gan, parameters_of
from core.schedule import plan_version
from core.store import RunRow, Store, UnitSpec
from core.unit_kinds import unit_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """Everything `init` needs, validated before the database is touched."""

    name: str
    model: ModelConfig
    settings: RunSettings
    dataset: tuple[str, int | Path]  # ("synthetic", count) or ("path", Path)
    background: tuple[int, int, int] = WHITE  # RGB under transparent pixels of ingested images


def read_config(
    path: Path | None, base: tuple[ModelConfig, RunSettings] | None = None
) -> tuple[ModelConfig, RunSettings]:
    """[model] and [training] tables of a TOML file over `base` (a preset; default: defaults)."""
    model, settings = base if base is not None else (ModelConfig(), RunSettings())
    if path is None:
        return model, settings
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"no config file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"model", "training"}
    if unknown:
        raise SettingsError(
            f"{path}: unknown section(s) {sorted(unknown)}; use [model] and [training]"
        )
    for section in ("model", "training"):
        if not isinstance(data.get(section, {}), dict):
            raise SettingsError(
                f"{path}: {section} must be a [{section}] table of KEY = VALUE lines"
            )
    try:
        model = ModelConfig.from_dict({**dataclasses.asdict(model), **data.get("model", {})})
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{path} [model]: {exc}") from None
    try:
        settings = RunSettings.from_dict({**settings.to_dict(), **data.get("training", {})})
    except SettingsError as exc:
        raise SettingsError(f"{path} [training]: {exc}") from None
    return model, settings


def check_dataset(spec: str) -> tuple[str, int | Path]:
    kind, value = parse_dataset_spec(spec)
    if kind == "path":
        assert isinstance(value, Path)
        if not value.exists():
            raise DatasetError(
                f"no dataset at {value}: give a folder of images, a .zip of them, or synthetic[:N]"
            )
    return kind, value


def dataset_shards(plan: RunPlan, report: IngestReport, progress: bool) -> Iterator[Shard]:
    kind, value = plan.dataset
    if kind == "synthetic":
        assert isinstance(value, int)
        report.found = report.images = value
        return synthetic_shards(value, plan.model.image_size, plan.settings.seed)
    assert isinstance(value, Path)
    return ingest_images(
        value, plan.model.image_size, report, progress=progress, background=plan.background
    )


def create_run(
    store: Store, plan: RunPlan, *, progress: bool = True, report: IngestReport | None = None
) -> RunRow:
    """Ingest the dataset and publish version 0, all in one transaction.

    `report`, if given, is filled with what ingestion found, used and skipped.
    """
    gan = build_gan(plan.model, plan.settings.seed)
    params = parameters_of(gan)
    rounded = plan.settings.weights_precision != "fp32"
    weights = encode_weights(
        params, plan.settings.weights_precision, plan.model, 0, plan.settings.lr
    )
    zeros = unit_kind(plan.settings).zeros_state(params)
    optimizer = encode_optimizer_state(zeros, params if rounded else None)
    report = report if report is not None else IngestReport()
    settings = plan.settings

    def first_units(dataset_size: int) -> list[UnitSpec]:
        if dataset_size < settings.batch_size:
            raise DatasetError(
                f"the dataset has {dataset_size} usable images, fewer than one micro-batch ({settings.batch_size})"
            )
        plans = plan_version(
            settings.seed,
            dataset_size,
            settings.images_per_work_unit,
            0,
            settings.num_workunits_per_update,
        )
        return [UnitSpec(p.unit_index, p.seed, p.sample_indices) for p in plans]

    run = store.create_run(
        name=plan.name,
        model_config=dataclasses.asdict(plan.model),
        settings=settings.to_dict(),
        shards=dataset_shards(plan, report, progress),
        weights=weights,
        weights_sha256=sha256_hex(weights),
        optimizer_state=optimizer,
        first_units=first_units,
    )
    log.info("dataset: %s", "; ".join(line.strip() for line in report.summary()))
    return run

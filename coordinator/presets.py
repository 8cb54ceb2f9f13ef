"""Named starting points for `init --preset NAME` (a `--config` file's keys override them)."""

from __future__ import annotations

from core.config import RunSettings
from core.model import ModelConfig

DESCRIPTIONS = {  # one line each for `init --help`
    "demo": "the model and settings of `ganfriends-coordinator demo` (synthetic:10000 images)",
    "class": "a class or lab of 8+ computers: local-steps units (64 SGD steps each), 32 per version",
}

# The model the local-steps recipe was measured on (the demo's; benchmarks/README.md, local_steps).
CLASS_MODEL = ModelConfig(image_size=32, latent_dim=64, g_features=32, d_features=32)
CLASS_SETTINGS = RunSettings(
    # 64 inner SGD steps of one 64-image micro-batch per unit, one upload per 4,096 images: 64x
    # fewer bytes per training image than 64-image gradient units. 32 simulated laptops on a
    # 1 Gbit/s link ran at 0.66-0.71 of 32 times one, against 0.42-0.45 with 16 steps per unit
    # (each version starts with every computer downloading the weights and ends with every
    # upload checked: ~1 s that 16 steps' 0.6 s of compute could not cover). The reference
    # trainer's quality per image is behind 16 steps' for the first ~0.6M images, then level
    # or ahead (best 204 by 1.31M images against 280; 204 and 212 by 2.1M), so at 1.7x the
    # images per second the class reached every figure from 300 to 204 sooner (212 after 36 s
    # against 111 s; benchmarks/README.md, "H = 64").
    # At 8 units per version after 65k images: H = 64 444, H = 16 481, exact units 574.
    inner_steps=64,
    images_per_work_unit=64 * 64,
    batch_size=64,
    num_workunits_per_update=32,  # about one per computer of a class; `set` changes it live
    inner_lr=0.1,
    # At H = 16 better than the default 0.008 on both sets. Kept at H = 64: 8 units over 262k
    # images gave best figures of 302-373 for 0.008 to 0.064, one seed (benchmarks/README.md).
    outer_lr=0.016,
    outer_momentum=0.5,
    # bf16 weights for the workers (fp32 master weights stay with the coordinator) and bf16
    # changes: half the bytes every version. 32 simulated laptops trained at 1.6-1.9x the
    # images/s of fp32 (benchmarks.class_sim), at quality within the figure's swing of fp32's
    # (benchmarks.demo_settings, both sets; benchmarks/README.md, "class_sim").
    weights_precision="bf16",
    precision="bf16",
)


def preset(name: str) -> tuple[ModelConfig, RunSettings]:
    """The model and settings of a preset named in DESCRIPTIONS."""
    if name == "demo":
        from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS

        return DEMO_MODEL, DEMO_SETTINGS
    if name == "class":
        return CLASS_MODEL, CLASS_SETTINGS
    raise KeyError(name)

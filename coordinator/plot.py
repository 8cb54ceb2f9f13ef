"""The loss-and-quality plot of a run as a PNG (matplotlib, no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window
import matplotlib.pyplot as plt

from core.store import MetricsRow


def write_training_plot(metrics: Sequence[MetricsRow], path: Path) -> None:
    """Discriminator and generator loss per version above, quality figure (SWD) below."""
    fig, (losses, quality) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    versions = [m.version + 1 for m in metrics]  # the row of version v produced version v + 1
    losses.plot(versions, [m.d_loss for m in metrics], label="discriminator loss", linewidth=0.8)
    losses.plot(versions, [m.g_loss for m in metrics], label="generator loss", linewidth=0.8)
    losses.set_ylabel("loss per sample")
    losses.legend(loc="upper right")
    losses.grid(alpha=0.3)
    scored = [m for m in metrics if m.swd is not None]
    quality.plot(
        [m.version + 1 for m in scored], [m.swd for m in scored], marker="o", color="tab:green"
    )
    quality.set_ylabel("sliced Wasserstein distance\n(lower is better)")
    quality.set_xlabel("version (Adam steps)")
    quality.grid(alpha=0.3)
    fig.suptitle("ganfriends: training progress")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

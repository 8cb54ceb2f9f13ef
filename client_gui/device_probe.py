"""Which devices this computer could donate, found in a child process, with a reason for each
one that cannot be used.

The probe imports torch and may initialise CUDA, which costs the process hundreds of MB; it
runs as `python -m client_gui.device_probe` (JSON on stdout) so the app stays small.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_GPU_MEMORY_BYTES = 2 * 1024**3  # below this a GPU is busy drawing the desktop already
PROBE_TIMEOUT_S = 120.0  # importing torch and waking a GPU driver can take a while
GB = 1024**3
NO_GPU = "none"  # the spec of the line that says why no GPU is found (never a device)


@dataclass(frozen=True)
class DeviceChoice:
    """One device as the Device page lists it."""

    spec: str  # what the worker is given: "cpu", "cuda:0", "mps"
    name: str  # GPU model or CPU description
    memory_bytes: int | None  # GPU memory; None for the CPU and Apple GPUs
    cores: int | None  # CPU cores; None for GPUs
    usable: bool
    reason: str  # why not usable ("" when usable)

    def label(self) -> str:
        """'NVIDIA H200 (cuda:0), 140 GB' or 'CPU: AMD Ryzen 7, 16 cores'."""
        if self.cores is not None:
            return f"CPU: {self.name}, {self.cores} cores"
        if self.spec == NO_GPU:
            return self.name
        memory = f", {self.memory_bytes / GB:.0f} GB" if self.memory_bytes else ""
        return f"{self.name} ({self.spec}){memory}"


def probe_devices_here() -> list[DeviceChoice]:
    """Detect devices in this process (imports torch)."""
    import torch

    from core.device import cpu_count, list_devices

    choices = [DeviceChoice("cpu", _cpu_name(), None, cpu_count(), True, "")]
    for device in list_devices():
        if device.spec == "cpu":
            continue
        memory = device.memory_bytes
        if memory is not None and memory < MIN_GPU_MEMORY_BYTES:
            reason = f"{memory / GB:.1f} GB is below the {MIN_GPU_MEMORY_BYTES / GB:.0f} GB needed"
            choices.append(DeviceChoice(device.spec, device.name, memory, None, False, reason))
        else:
            choices.append(DeviceChoice(device.spec, device.name, memory, None, True, ""))
    if torch.version.cuda is None and shutil.which("nvidia-smi"):
        choices.append(
            DeviceChoice(
                "cuda",
                "NVIDIA GPU",
                None,
                None,
                False,
                "this copy of PyTorch has no CUDA support; install the CUDA build of PyTorch",
            )
        )
    if not any(c.cores is None for c in choices):  # no GPU at all: say why, and what to do
        why = no_gpu_reason(
            system=sys.platform,
            nvidia_smi=shutil.which("nvidia-smi") is not None,
            cuda_build=torch.version.cuda,
            cuda_available=torch.cuda.is_available(),
        )
        if why is not None:
            choices.append(DeviceChoice(NO_GPU, "No usable GPU", None, None, False, why))
    if sys.platform == "darwin" and not torch.backends.mps.is_available():
        choices.append(
            DeviceChoice(
                "mps",
                "Apple GPU (Metal)",
                None,
                None,
                False,
                "needs an Apple silicon Mac with macOS 12.3 or later",
            )
        )
    return choices


def no_gpu_reason(
    *, system: str, nvidia_smi: bool, cuda_build: str | None, cuda_available: bool
) -> str | None:
    """Why no GPU computes here and what to install (None where a GPU should be found)."""
    see = " (see docs/install.md)"
    if system == "darwin":
        return None  # the Apple GPU's own line says what it needs
    if system == "win32" and cuda_build is None:
        return (
            "the Windows release uses the CPU build of PyTorch: NVIDIA GPUs are not used on "
            "Windows yet, so the CPU computes" + see
        )
    if cuda_build is not None and nvidia_smi and not cuda_available:
        return (
            f"an NVIDIA driver is installed but PyTorch (CUDA {cuda_build}) cannot use it, "
            "most likely because the driver is too old: update it to 580 or newer and start "
            "ganfriends again" + see
        )
    if not nvidia_smi:
        return (
            "no NVIDIA driver found (nvidia-smi is missing): with an NVIDIA card, install its "
            "driver (580 or newer) and start ganfriends again; AMD and Intel GPUs are not used, "
            "so the CPU computes" + see
        )
    return None


def probe_devices(python: str = sys.executable) -> list[DeviceChoice]:
    """Detect devices in a child process; on failure only the CPU, with the reason logged."""
    try:
        done = subprocess.run(
            [python, "-m", "client_gui.device_probe"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise OSError((done.stderr.strip().splitlines() or ["no message"])[-1])
        return [DeviceChoice(**item) for item in json.loads(done.stdout)]
    except (OSError, ValueError, TypeError, subprocess.TimeoutExpired) as exc:
        log.warning("device detection failed (%s); offering the CPU only", exc)
        reason = f"GPU detection failed: {exc}"
        return [
            DeviceChoice("cpu", _cpu_name(), None, cpu_cores(), True, ""),
            DeviceChoice("cuda", "GPUs", None, None, False, reason),
        ]


def auto_device(choices: list[DeviceChoice]) -> tuple[str, str | None]:
    """What "automatic" picks (the usable GPU with most memory, else the CPU) and a note
    naming the GPUs it skipped, e.g. "GPU cuda:1 skipped: 1.5 GB is below the 2 GB needed"."""
    gpus = [c for c in choices if c.cores is None and c.usable]
    # "No usable GPU" is said on the Device page, not on the status line of every CPU computer.
    skipped = [c for c in choices if c.cores is None and not c.usable and c.spec != NO_GPU]
    note = "; ".join(f"GPU {c.spec} skipped: {c.reason}" for c in skipped) or None
    if gpus:
        best = max(gpus, key=lambda c: c.memory_bytes or 0)
        return best.spec, note
    return "cpu", note


def cpu_cores() -> int:
    """CPUs this process may use, without importing torch (core.device.cpu_count does)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "processor"


def main() -> int:
    print(json.dumps([asdict(choice) for choice in probe_devices_here()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

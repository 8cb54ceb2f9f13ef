"""Compute devices: what this computer has, which one to use, and how many CPU threads."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch


class DeviceError(ValueError):
    """A device that was asked for but cannot be used; the message says why."""


@dataclass(frozen=True)
class DeviceInfo:
    """One device a volunteer could donate, with a reason when it cannot be used."""

    spec: str  # "cpu", "cuda:0", "mps"
    name: str  # human name: GPU model or CPU description
    memory_bytes: int | None  # GPU memory; None for the CPU
    usable: bool
    reason: str  # why it cannot be used ("" when usable)


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def list_devices() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", f"CPU ({cpu_count()} cores)", None, True, "")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", props.name, props.total_memory, True, ""))
    if torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "Apple GPU (Metal)", None, True, ""))
    return devices


_SPEC = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")


def select_device(spec: str) -> torch.device:
    """Turn `auto|cpu|cuda[:N]|mps` into a usable torch.device, or raise DeviceError."""
    match = _SPEC.match(spec.strip().lower())
    if match is None:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    kind = match.group(1)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                "no CUDA GPU is available here (no NVIDIA driver or a CPU-only PyTorch)"
            )
        index = int(match.group(2) or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"there is no GPU cuda:{index}; this computer has {torch.cuda.device_count()}"
            )
        return torch.device(f"cuda:{index}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("Apple MPS is not available on this computer")
    return torch.device(kind)


def default_threads(registry_dir: Path) -> int:
    """CPU threads for one worker: the cores shared fairly among workers alive on this machine.

    Each worker leaves a pid file in `registry_dir` (see `register_local_worker`); two workers
    that each took every core would oversubscribe the CPU and both run several times slower.
    """
    return max(1, cpu_count() // max(1, len(live_local_workers(registry_dir))))


def register_local_worker(registry_dir: Path) -> Path:
    registry_dir.mkdir(parents=True, exist_ok=True)
    path = registry_dir / f"{os.getpid()}.pid"
    path.write_text(str(os.getpid()))
    return path


def live_local_workers(registry_dir: Path) -> list[int]:
    """Pids of workers on this machine that are still running; stale pid files are removed."""
    alive = []
    for path in registry_dir.glob("*.pid") if registry_dir.exists() else []:
        try:
            pid = int(path.stem)
            os.kill(pid, 0)
            alive.append(pid)
        except (ValueError, ProcessLookupError):
            path.unlink(missing_ok=True)
        except PermissionError:  # alive, owned by another user
            alive.append(pid)
    return alive


def lower_priority() -> None:
    """Run this process at low OS priority so the volunteer's own programs come first."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # already as low as we may set
            os.nice(10)
    elif os.name == "nt":
        import ctypes

        below_normal = 0x00004000
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), below_normal)

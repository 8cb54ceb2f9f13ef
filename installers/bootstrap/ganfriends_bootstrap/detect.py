"""Accelerator detection without importing torch: nvidia-smi, Apple silicon, else CPU."""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

VARIANTS = ("cpu", "cu126", "cu128", "cu130", "mps")
NVIDIA_SMI_TIMEOUT_S = 15.0  # seconds; a wedged driver must not hang the launcher
NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=name,compute_cap,driver_version",
    "--format=csv,noheader",
]


@dataclass(frozen=True)
class CudaBuild:
    """What one PyTorch CUDA build needs from the machine."""

    variant: str  # lock variant name, e.g. "cu128"
    cuda: tuple[int, int]  # CUDA runtime the build ships
    min_linux_driver: tuple[int, ...]  # driver of that CUDA toolkit's release (Linux)
    min_windows_driver: tuple[int, ...]  # same, Windows driver numbering
    min_cc: tuple[int, int]  # oldest compute capability the build has kernels for
    max_cc: tuple[int, int] | None  # newest one, None if open-ended


# Best first. Drivers from NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" table;
# compute capabilities from the arch lists PyTorch builds with (cu128 dropped Maxwell and
# Pascal, CUDA 13 dropped Volta, cu126 has no Blackwell kernels).
CUDA_BUILDS = (
    CudaBuild("cu130", (13, 0), (580, 65, 6), (580, 88), (7, 5), None),
    CudaBuild("cu128", (12, 8), (570, 26), (570, 65), (7, 0), None),
    CudaBuild("cu126", (12, 6), (560, 28, 3), (560, 76), (5, 0), (9, 0)),
)


@dataclass(frozen=True)
class Gpu:
    """One line of nvidia-smi's answer."""

    name: str
    compute_capability: tuple[int, int]
    driver: tuple[int, ...]


@dataclass(frozen=True)
class Detection:
    """The variant to install and why; `candidates` lists fallbacks, best first."""

    variant: str
    reason: str
    candidates: tuple[str, ...]
    gpus: tuple[Gpu, ...] = field(default=())


def run_nvidia_smi() -> str | None:
    """nvidia-smi's CSV answer, or None when there is no driver or it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            NVIDIA_SMI_QUERY,
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class Probes:
    """Everything detection asks the machine; tests replace each with a fake."""

    system: Callable[[], str] = platform.system  # "Linux", "Windows", "Darwin"
    machine: Callable[[], str] = platform.machine  # "x86_64", "AMD64", "arm64"
    nvidia_smi: Callable[[], str | None] = run_nvidia_smi


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().split("."))


def parse_gpus(csv_text: str) -> tuple[Gpu, ...]:
    """Parse `name, compute_cap, driver_version` lines; unparseable lines are skipped."""
    gpus = []
    for line in csv_text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3:
            continue
        try:
            cc = _version(parts[1])
            gpus.append(Gpu(parts[0], (cc[0], cc[1] if len(cc) > 1 else 0), _version(parts[2])))
        except ValueError:
            continue  # "[N/A]" or a driver error text instead of numbers
    return tuple(gpus)


def highest_cuda(driver: tuple[int, ...], system: str) -> tuple[int, int] | None:
    """The newest CUDA (of the builds we ship) that this driver version supports."""
    for build in CUDA_BUILDS:
        need = build.min_windows_driver if system == "Windows" else build.min_linux_driver
        if driver >= need:
            return build.cuda
    return None


def _fits(build: CudaBuild, gpu: Gpu, system: str) -> bool:
    cuda = highest_cuda(gpu.driver, system)
    cc_ok = gpu.compute_capability >= build.min_cc and (
        build.max_cc is None or gpu.compute_capability <= build.max_cc
    )
    return cuda is not None and cuda >= build.cuda and cc_ok


def _fmt(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def _fmt_driver(version: tuple[int, ...]) -> str:
    # NVIDIA writes the third part with two digits: 560.28.03
    return ".".join(f"{v:02d}" if i == 2 else str(v) for i, v in enumerate(version))


def _nvidia(gpus: tuple[Gpu, ...], system: str) -> Detection:
    fitting = [b.variant for b in CUDA_BUILDS if all(_fits(b, g, system) for g in gpus)]
    names = ", ".join(f"{g.name} (compute {_fmt(g.compute_capability)})" for g in gpus)
    driver = _fmt_driver(min(g.driver for g in gpus))
    if fitting:
        cuda = highest_cuda(min(g.driver for g in gpus), system)
        reason = f"{names}; driver {driver} supports CUDA {_fmt(cuda or (0, 0))}"
        return Detection(fitting[0], reason, (*fitting, "cpu"), gpus)
    oldest = min(CUDA_BUILDS, key=lambda b: b.min_linux_driver)
    need = oldest.min_windows_driver if system == "Windows" else oldest.min_linux_driver
    if highest_cuda(min(g.driver for g in gpus), system) is None:
        reason = (
            f"{names}: driver {driver} is too old for the GPU builds of PyTorch; "
            f"update the NVIDIA driver to {_fmt_driver(need)} or newer to use the GPU"
        )
    elif min(g.compute_capability for g in gpus) < min(b.min_cc for b in CUDA_BUILDS):
        reason = f"{names}: compute capability too old for every PyTorch CUDA build"
    else:
        reason = (
            f"{names}: no PyTorch CUDA build supports this GPU with driver {driver}; "
            "update the NVIDIA driver to use the GPU"
        )
    return Detection("cpu", reason, ("cpu",), gpus)


def detect(probes: Probes | None = None, override: str = "auto") -> Detection:
    """Pick the variant for this machine; `override` (not "auto") wins unconditionally."""
    probes = probes or Probes()
    if override != "auto":
        if override not in VARIANTS:
            raise ValueError(f"unknown variant {override!r}; choose auto or one of {VARIANTS}")
        return Detection(override, "chosen with --variant", (override,))
    system, machine = probes.system(), probes.machine().lower()
    if system == "Darwin":
        if machine == "arm64":
            return Detection("mps", "Apple silicon (Metal)", ("mps", "cpu"))
        return Detection("cpu", "Intel Mac: no GPU build of PyTorch", ("cpu",))
    answer = probes.nvidia_smi()
    if answer is None:
        return Detection("cpu", "no NVIDIA driver found (nvidia-smi missing or failing)", ("cpu",))
    gpus = parse_gpus(answer)
    if not gpus:
        return Detection("cpu", "nvidia-smi lists no usable GPU", ("cpu",))
    return _nvidia(gpus, system)

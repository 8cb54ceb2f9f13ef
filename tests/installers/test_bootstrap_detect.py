"""Accelerator detection with faked nvidia-smi / platform answers, and the override."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installers" / "bootstrap"))

from ganfriends_bootstrap.detect import Probes, detect, highest_cuda, parse_gpus


def probes(system: str = "Linux", machine: str = "x86_64", smi: str | None = None) -> Probes:
    """Fake probes: nothing on this machine is asked."""
    return Probes(system=lambda: system, machine=lambda: machine, nvidia_smi=lambda: smi)


# (system, nvidia-smi answer, expected variant, expected words in the reason)
TABLE = [
    ("Linux", None, "cpu", "no NVIDIA driver"),
    ("Windows", None, "cpu", "no NVIDIA driver"),
    ("Linux", "", "cpu", "no usable GPU"),
    ("Linux", "NVIDIA GeForce RTX 4090, [N/A], [N/A]", "cpu", "no usable GPU"),
    ("Linux", "NVIDIA GeForce RTX 4090, 8.9, 580.82.07", "cu130", "CUDA 13.0"),
    ("Windows", "NVIDIA GeForce RTX 4090, 8.9, 581.15", "cu130", "CUDA 13.0"),
    ("Linux", "NVIDIA GeForce RTX 4090, 8.9, 575.57.08", "cu128", "CUDA 12.8"),
    ("Windows", "NVIDIA GeForce RTX 4090, 8.9, 572.16", "cu128", "CUDA 12.8"),
    ("Linux", "NVIDIA GeForce RTX 3060, 8.6, 560.35.03", "cu126", "CUDA 12.6"),
    ("Windows", "NVIDIA GeForce RTX 3060, 8.6, 561.09", "cu126", "CUDA 12.6"),
    # Pascal: CUDA 13 and cu128 builds have no kernels for it; cu126 does
    ("Linux", "NVIDIA GeForce GTX 1080, 6.1, 580.82.07", "cu126", "CUDA 13.0"),
    # Volta: dropped by CUDA 13, kept by cu128
    ("Linux", "Tesla V100-SXM2-16GB, 7.0, 580.82.07", "cu128", "CUDA 13.0"),
    # Blackwell on a 12.6 driver: only cu128+ know it, so the driver is the problem
    ("Linux", "NVIDIA GeForce RTX 5090, 12.0, 560.35.03", "cpu", "update the NVIDIA driver"),
    ("Linux", "NVIDIA GeForce RTX 3060, 8.6, 535.183.01", "cpu", "560.28.03 or newer"),
    ("Windows", "NVIDIA GeForce RTX 3060, 8.6, 546.01", "cpu", "560.76 or newer"),
    ("Linux", "Tesla K80, 3.7, 580.82.07", "cpu", "compute capability too old"),
    # two GPUs: the variant must serve both (the V100 rules out cu130)
    ("Linux", "RTX 4090, 8.9, 580.82.07\nTesla V100, 7.0, 580.82.07", "cu128", "V100"),
]


@pytest.mark.parametrize(("system", "smi", "variant", "words"), TABLE)
def test_detection_table(system: str, smi: str | None, variant: str, words: str) -> None:
    found = detect(probes(system=system, smi=smi))
    assert (found.variant, words in found.reason) == (variant, True), found.reason
    assert found.candidates[0] == variant and found.candidates[-1] == "cpu"


def test_gpu_variants_fall_back_best_first_then_cpu() -> None:
    found = detect(probes(smi="NVIDIA RTX A6000, 8.6, 580.82.07"))
    assert found.candidates == ("cu130", "cu128", "cu126", "cpu")


def test_apple_silicon_is_mps_and_never_asks_nvidia() -> None:
    def no_smi() -> str | None:
        raise AssertionError("nvidia-smi asked on a Mac")

    found = detect(Probes(system=lambda: "Darwin", machine=lambda: "arm64", nvidia_smi=no_smi))
    assert (found.variant, found.candidates) == ("mps", ("mps", "cpu"))


def test_intel_mac_is_cpu() -> None:
    assert detect(probes(system="Darwin", machine="x86_64")).variant == "cpu"


@pytest.mark.parametrize("variant", ["cpu", "cu126", "cu128", "cu130", "mps"])
def test_override_wins_over_detection(variant: str) -> None:
    found = detect(probes(smi="NVIDIA GeForce RTX 4090, 8.9, 580.82.07"), override=variant)
    assert (found.variant, found.candidates) == (variant, (variant,))


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        detect(probes(), override="rocm")


def test_driver_to_cuda_boundaries() -> None:
    assert highest_cuda((580, 65, 6), "Linux") == (13, 0)
    assert highest_cuda((580, 65, 5), "Linux") == (12, 8)
    assert highest_cuda((570, 26), "Linux") == (12, 8)
    assert highest_cuda((560, 28, 3), "Linux") == (12, 6)
    assert highest_cuda((560, 28, 2), "Linux") is None
    assert highest_cuda((580, 88), "Windows") == (13, 0)


def test_parse_gpus_keeps_commas_in_names() -> None:
    (gpu,) = parse_gpus("Some, Odd, Name, 8.6, 560.35.03\n")
    assert (gpu.name, gpu.compute_capability, gpu.driver) == (
        "Some, Odd, Name",
        (8, 6),
        (560, 35, 3),
    )

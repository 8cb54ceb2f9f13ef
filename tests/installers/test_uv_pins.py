"""The pinned uv: uv_pins.json is complete, fetch_uv verifies the sha256 and extracts the binary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import fetch_uv  # noqa: E402

KEYS = {"linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-arm64", "macos-x86_64"}


def test_pins_cover_every_platform_with_a_pypi_url_and_sha256() -> None:
    pins = fetch_uv.load_pins()
    assert set(pins["platforms"]) == KEYS
    for key, entry in pins["platforms"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), key
        assert entry["url"].startswith("https://files.pythonhosted.org/packages/"), key
        assert entry["url"].endswith("/" + entry["filename"]), key
        assert entry["filename"].startswith(f"uv-{pins['version']}-py3-none-"), key
    assert len({e["sha256"] for e in pins["platforms"].values()}) == len(KEYS)


def test_a_wheel_that_does_not_match_the_pin_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tampered(url: str, dest: Path) -> None:
        dest.write_bytes(b"not the pinned wheel")

    monkeypatch.setattr(fetch_uv, "_download", tampered)
    with pytest.raises(fetch_uv.FetchUvError, match="does not match the pin"):
        fetch_uv.fetch_uv("linux-x86_64", tmp_path / "bin", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "uv-wheels").glob("*.whl"))  # not kept


@pytest.mark.slow
def test_fetch_uv_cli_extracts_a_working_binary(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(INSTALLERS / "fetch_uv.py"),
            "--platform",
            "linux-x86_64",
            "--dest",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    uv = Path(done.stdout.strip())
    assert uv == tmp_path / "uv"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[:2] == ["uv", fetch_uv.load_pins()["version"]]


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_pinned_wheel_holds_its_binary(key: str, tmp_path: Path) -> None:
    binary = fetch_uv.fetch_uv(key, tmp_path)
    head = binary.read_bytes()[:4]
    if key.startswith("windows"):
        assert (binary.name, head[:2]) == ("uv.exe", b"MZ")
    elif key.startswith("macos"):
        assert head in (b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")  # Mach-O 64 / universal
    else:
        assert head == b"\x7fELF"
    assert (
        fetch_uv.sha256_of(fetch_uv.cached_wheel(key))
        == fetch_uv.load_pins()["platforms"][key]["sha256"]
    )

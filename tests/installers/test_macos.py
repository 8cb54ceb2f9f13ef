"""ganfriends.app: bundle layout, Info.plist, launcher, the worker's launchd agent and the
signing script (checked without a Mac: plistlib, no plutil)."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.installers.tools import need

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import build_app_dir  # noqa: E402
import build_macos_app  # noqa: E402
from build_contract import APP_ID, BuildError, launch_args, read_app_dir  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ganfriends.app built from a real macos-arm64 app dir (a few seconds)."""
    need("rsvg-convert", "librsvg2-bin")  # renders the icon
    tmp = tmp_path_factory.mktemp("macos")
    app = read_app_dir(build_app_dir.build_app_dir("macos-arm64", tmp / "app"))
    return build_macos_app.build_app(app, tmp / "out")


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.installers
def test_bundle_layout_holds_the_app_dir_icon_and_launcher(bundle: Path, tmp_path: Path) -> None:
    app_dir = bundle / build_macos_app.RESOURCES_APP
    assert read_app_dir(app_dir).uv_name == "uv"
    expected = {f"Contents/Resources/app/{f}" for f in files_of(app_dir)} | {
        "Contents/Info.plist",
        "Contents/PkgInfo",
        "Contents/MacOS/ganfriends",
        "Contents/Resources/ganfriends.icns",
    }
    assert files_of(bundle) == expected
    for exe in ("Contents/MacOS/ganfriends", "Contents/Resources/app/uv"):
        assert (bundle / exe).stat().st_mode & stat.S_IXUSR, exe
    assert (bundle / "Contents/Resources/ganfriends.icns").read_bytes()[:4] == b"icns"


@pytest.mark.installers
def test_info_plist_names_the_executable_icon_and_minimum_macos(bundle: Path) -> None:
    info = plistlib.loads((bundle / "Contents/Info.plist").read_bytes())
    assert info["CFBundleIdentifier"] == APP_ID and info["CFBundlePackageType"] == "APPL"
    assert (bundle / "Contents/MacOS" / info["CFBundleExecutable"]).is_file()
    assert (bundle / "Contents/Resources" / info["CFBundleIconFile"]).is_file()
    version = (bundle / build_macos_app.RESOURCES_APP / "VERSION").read_text().strip()
    assert info["CFBundleShortVersionString"] == info["CFBundleVersion"] == version
    readme = (INSTALLERS / "README.md").read_text()
    assert f"**macOS {info['LSMinimumSystemVersion']}" in readme
    assert info["LSMinimumSystemVersion"] == "14.0"  # torch 2.13's macosx_14_0_arm64 wheels


def test_minimum_macos_must_be_stated_in_the_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("Minimum systems: **macOS 15.2 (Sequoia)** on Apple silicon\n")
    assert build_macos_app.minimum_macos(readme) == "15.2"
    readme.write_text("no minimum here\n")
    with pytest.raises(BuildError, match="Minimum systems"):
        build_macos_app.minimum_macos(readme)


@pytest.mark.installers
def test_launcher_runs_the_launch_contract_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    moved = tmp_path / "Some Apps" / "ganfriends.app"  # a path with a space
    moved.parent.mkdir()
    subprocess.run(["cp", "-a", str(bundle), str(moved)], check=True)
    app_dir = moved / build_macos_app.RESOURCES_APP
    (app_dir / "uv").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    subprocess.run([str(moved / "Contents/MacOS/ganfriends"), "--repair"], env=env, check=True)
    log = tmp_path / "home/Library/Logs/ganfriends/launcher.log"
    assert log.read_text().splitlines() == launch_args(str(app_dir), "uv", extra=["--repair"])[1:]


@pytest.mark.installers
def test_worker_agent_runs_the_worker_in_the_background_and_restarts_it(bundle: Path) -> None:
    agent = bundle.parent / f"{build_macos_app.AGENT_LABEL}.plist"
    plist = plistlib.loads(agent.read_bytes())
    app_dir = f"/Applications/ganfriends.app/{build_macos_app.RESOURCES_APP}"
    worker = ["--worker", "--", "--device", "auto"]
    assert plist["ProgramArguments"] == launch_args(app_dir, "uv", extra=worker)
    assert plist["Label"] == "org.ganfriends.worker" and plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ProcessType"] == "Background" and plist["Nice"] == 19
    assert "GANFRIENDS_INVITE" in plist["EnvironmentVariables"]


def test_signing_script_is_valid_bash_and_signs_notarises_and_staples() -> None:
    script = INSTALLERS / "macos" / "sign_and_notarize.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for step in (
        "codesign",
        "--options runtime",
        "hdiutil create",
        "notarytool submit",
        "stapler staple",
    ):
        assert step in text, step

"""Assemble ganfriends.app (and the launchd agent of the headless worker) from an app dir."""

from __future__ import annotations

import argparse
import plistlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

from build_contract import (
    APP_ID,
    INSTALLERS,
    AppDir,
    BuildError,
    add_common_args,
    app_dir_for,
    launch_args,
    set_mtimes,
)
from build_icons import build_icons

README = INSTALLERS / "README.md"
BUNDLE = "ganfriends.app"
RESOURCES_APP = "Contents/Resources/app"  # the app dir inside the bundle
INSTALLED_APP_DIR = f"/Applications/{BUNDLE}/{RESOURCES_APP}"  # where the agent expects it
AGENT_LABEL = "org.ganfriends.worker"
INVITE_PLACEHOLDER = "REPLACE-WITH-THE-INVITE-CODE"
STAMP = "$HOME/Library/Application Support/ganfriends/env/ganfriends-stamp.json"


def minimum_macos(readme: Path = README) -> str:
    """The minimum macOS that installers/README.md states ("Minimum systems: **macOS 14.0")."""
    found = re.search(r"Minimum systems:\s*\*\*macOS (\d+\.\d+)", readme.read_text("utf-8"))
    if not found:
        raise BuildError(f"{readme} states no 'Minimum systems: **macOS X.Y'; add it there")
    return found.group(1)


def info_plist(app: AppDir, minimum: str) -> dict[str, object]:
    """Contents/Info.plist of the bundle."""
    return {
        "CFBundleDevelopmentRegion": "en",
        "CFBundleDisplayName": "ganfriends",
        "CFBundleExecutable": "ganfriends",
        "CFBundleIconFile": "ganfriends.icns",
        "CFBundleIdentifier": APP_ID,
        "CFBundleInfoDictionaryVersion": "6.0",
        "CFBundleName": "ganfriends",
        "CFBundlePackageType": "APPL",
        "CFBundleShortVersionString": app.version,
        "CFBundleVersion": app.version,
        "LSApplicationCategoryType": "public.app-category.education",
        "LSMinimumSystemVersion": minimum,
        "NSHighResolutionCapable": True,
        "NSHumanReadableCopyright": "ganfriends contributors, MIT licence",
    }


def launcher_script(uv_name: str) -> str:
    """Contents/MacOS/ganfriends: run the launch contract from the bundle's app dir.

    Finder shows no terminal, so the first start (a download of several hundred MB) posts a
    notification, and the bootstrapper's output goes to ~/Library/Logs/ganfriends.
    """
    args = " ".join(f'"{a}"' for a in launch_args("$APP", uv_name))
    return (
        "#!/bin/sh\n"
        "# ganfriends.app's executable: uv runs the bootstrapper from the bundle's app dir.\n"
        'APP="$(cd "$(dirname "$0")/../Resources/app" && pwd)"\n'
        'LOGS="$HOME/Library/Logs/ganfriends"\n'
        'mkdir -p "$LOGS"\n'
        f'if [ -z "${{GANFRIENDS_HOME:-}}" ] && [ ! -f "{STAMP}" ]; then\n'
        "    osascript -e 'display notification \"Downloading PyTorch for the first start; "
        'this takes a few minutes." with title "ganfriends"\' >/dev/null 2>&1 || true\n'
        "fi\n"
        f'exec {args} "$@" >>"$LOGS/launcher.log" 2>&1\n'
    )


def worker_agent_plist(app_dir: str = INSTALLED_APP_DIR, uv_name: str = "uv") -> dict[str, object]:
    """The launchd agent that runs the headless worker while the user is logged in."""
    return {
        "Label": AGENT_LABEL,
        "ProgramArguments": launch_args(
            app_dir, uv_name, extra=["--worker", "--", "--device", "auto"]
        ),
        # plutil -replace EnvironmentVariables.GANFRIENDS_INVITE -string CODE <this file>
        "EnvironmentVariables": {"GANFRIENDS_INVITE": INVITE_PLACEHOLDER},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 60,  # seconds between restarts after a failure
        "ProcessType": "Background",  # launchd throttles CPU and I/O like a background task
        "LowPriorityIO": True,
        "LowPriorityBackgroundIO": True,
        "Nice": 19,
    }


def build_app(app: AppDir, out: Path, minimum: str | None = None) -> Path:
    """Assemble ganfriends.app in `out` (replacing one there) and the worker agent beside it."""
    minimum = minimum or minimum_macos()
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / BUNDLE
    if bundle.exists():
        shutil.rmtree(bundle)
    contents = bundle / "Contents"
    shutil.copytree(app.path, bundle / RESOURCES_APP)
    (bundle / RESOURCES_APP / app.uv_name).chmod(0o755)
    with tempfile.TemporaryDirectory(prefix="ganfriends-icons-") as tmp:
        icons = build_icons(Path(tmp))
        shutil.copyfile(icons.icns, contents / "Resources" / "ganfriends.icns")
    (contents / "MacOS").mkdir()
    launcher = contents / "MacOS" / "ganfriends"
    launcher.write_text(launcher_script(app.uv_name), encoding="utf-8")
    launcher.chmod(0o755)
    (contents / "Info.plist").write_bytes(plistlib.dumps(info_plist(app, minimum)))
    (contents / "PkgInfo").write_text("APPL????", encoding="ascii")
    agent = out / f"{AGENT_LABEL}.plist"
    agent.write_bytes(plistlib.dumps(worker_agent_plist(uv_name=app.uv_name)))
    set_mtimes(bundle)
    return bundle


def main(argv: list[str] | None = None) -> int:
    """CLI: build_macos_app.py [--platform KEY] [--app-dir DIR] --out DIR."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser, ("macos-arm64", "macos-x86_64"))
    args = parser.parse_args(argv)
    try:
        with app_dir_for(args.platform, args.app_dir) as app:
            print(build_app(app, args.out))
    except BuildError as exc:
        print(f"build_macos_app: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

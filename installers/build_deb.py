"""Build the Linux .deb and tarball of ganfriends from an app dir."""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from build_contract import (
    APP_ID,
    INSTALLERS,
    SUMMARY,
    AppDir,
    BuildError,
    add_common_args,
    app_dir_for,
    launch_args,
    require_tool,
    run_tool,
    set_mtimes,
    source_date_epoch,
)
from build_icons import IconSet, build_icons

LINUX = INSTALLERS / "linux"
OPT = "opt/ganfriends"
DEB_ARCH = {"linux-x86_64": "amd64", "linux-aarch64": "arm64"}
MAINTAINER = "ganfriends contributors <ganfriends@example.org>"
# What the PySide6 wheel's Qt libraries and xcb/wayland platform plugins load from the system
# (objdump -p NEEDED of libqxcb.so, libqwayland.so and libQt6*.so, minus what the wheel
# bundles); test_deb checks this list against the installed wheel. python3 runs
# ganfriends-lab-setup and serves uv as the interpreter when it is 3.11 or newer.
DEPENDS = (
    "python3",
    "libc6",
    "libstdc++6",
    "libgcc-s1",
    "zlib1g",
    "libzstd1",
    "libglib2.0-0t64 | libglib2.0-0",
    "libdbus-1-3",
    "libfontconfig1",
    "libfreetype6",
    "libegl1",
    "libgl1",
    "libx11-6",
    "libx11-xcb1",
    "libxcb1",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-shm0",
    "libxcb-sync1",
    "libxcb-util1",
    "libxcb-xfixes0",
    "libxcb-xkb1",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libwayland-client0",
    "libwayland-cursor0",
)
RECOMMENDS = ("systemd",)
EXECUTABLE = 0o755
REGULAR = 0o644


def sh_words(words: Sequence[str]) -> str:
    """Double-quote each word for sh, leaving `$APP` to expand (no other specials allowed)."""
    for w in words:
        if any(c in w for c in '"\\`') or "$" in w.replace("$APP", ""):
            raise BuildError(f"launch argument {w!r} cannot be quoted for sh")
    return " ".join(f'"{w}"' for w in words)


def launcher_script(app_line: str, uv_name: str) -> str:
    """The sh launcher: set APP (the app dir) with `app_line`, then exec the launch command."""
    return (
        "#!/bin/sh\n"
        "# Opens the ganfriends desktop app: uv runs the bootstrapper, which prepares the\n"
        "# private environment on first use and then starts the app. Arguments go to the\n"
        "# bootstrapper (--repair, --variant cpu, --worker -- ARGS, ...).\n"
        f"{app_line}\n"
        f'exec {sh_words(launch_args("$APP", uv_name))} "$@"\n'
    )


def _copy(src: Path, dest: Path, mode: int = REGULAR) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _write(dest: Path, text: str, mode: int = REGULAR) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    dest.chmod(mode)


def _gzip(src_text: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as z:
        z.write(src_text.encode("utf-8"))  # mtime=0 and no name: gzip -9n, as Debian wants
    dest.chmod(REGULAR)


def copy_app_dir(app: AppDir, dest: Path) -> None:
    """Copy the app dir's files to `dest`; uv and scripts (the .pyz has a #!) are executable."""
    for rel in app.files():
        with (app.path / rel).open("rb") as f:
            script = f.read(2) == b"#!"
        mode = EXECUTABLE if rel == app.uv_name or script else REGULAR
        _copy(app.path / rel, dest / rel, mode)


def metainfo_text(version: str) -> str:
    """The AppStream metainfo with this release's version and date filled in."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
        if epoch
        else datetime.date.today()
    )
    text = (LINUX / f"{APP_ID}.metainfo.xml").read_text(encoding="utf-8")
    return text.replace("@VERSION@", version).replace("@DATE@", day.isoformat())


def stage_shared_files(app: AppDir, icons: IconSet, root: Path, share: str) -> None:
    """Desktop file, icons and AppStream metainfo under `root/share` (share = "usr/share")."""
    base = root / share
    _copy(LINUX / f"{APP_ID}.desktop", base / "applications" / f"{APP_ID}.desktop")
    _write(base / "metainfo" / f"{APP_ID}.metainfo.xml", metainfo_text(app.version))
    hicolor = base / "icons" / "hicolor"
    for size, png in icons.pngs.items():
        _copy(png, hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png")
    _copy(icons.svg, hicolor / "scalable" / "apps" / f"{APP_ID}.svg")


def _changelog(version: str) -> str:
    when = datetime.datetime.fromtimestamp(source_date_epoch(), datetime.UTC)
    return (
        f"ganfriends ({version}) unstable; urgency=medium\n\n"
        f"  * Release {version}.\n\n"
        f" -- {MAINTAINER}  {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n"
    )


def stage_deb_tree(app: AppDir, icons: IconSet, root: Path) -> None:
    """Lay out the installed files of the .deb under `root` (no DEBIAN/ yet)."""
    copy_app_dir(app, root / OPT)
    _write(root / "usr/bin/ganfriends", launcher_script(f"APP=/{OPT}", app.uv_name), EXECUTABLE)
    _copy(LINUX / "ganfriends_lab_setup.py", root / "usr/sbin/ganfriends-lab-setup", EXECUTABLE)
    stage_shared_files(app, icons, root, "usr/share")
    for unit in ("ganfriends-worker@.service",):
        _copy(LINUX / unit, root / "usr/lib/systemd/system" / unit)
    _copy(LINUX / "ganfriends.sysusers.conf", root / "usr/lib/sysusers.d/ganfriends.conf")
    doc = root / "usr/share/doc/ganfriends"
    _copy(LINUX / "copyright", doc / "copyright")
    _copy(LINUX / "worker.env.example", doc / "worker.env.example")
    _gzip(_changelog(app.version), doc / "changelog.gz")
    for page, section in (("ganfriends.1", "man1"), ("ganfriends-lab-setup.8", "man8")):
        _gzip(
            (LINUX / page).read_text(encoding="utf-8"),
            root / "usr/share/man" / section / f"{page}.gz",
        )
    _copy(LINUX / "lintian-overrides", root / "usr/share/lintian/overrides/ganfriends")


def control_text(version: str, arch: str, installed_kib: int) -> str:
    """DEBIAN/control of the package."""
    return (
        "Package: ganfriends\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_kib}\n"
        f"Depends: {', '.join(DEPENDS)}\n"
        f"Recommends: {', '.join(RECOMMENDS)}\n"
        "Section: science\n"
        "Priority: optional\n"
        f"Description: {SUMMARY}\n"
        " ganfriends is volunteer computing for deep learning: friends, a class or a lab\n"
        " lend their computers to train one shared generative adversarial network.\n"
        " .\n"
        " This package holds the desktop app's launcher, which creates a private Python\n"
        " environment with PyTorch for this computer's GPU on first start (several GB),\n"
        " and a systemd template unit with a setup command that runs one sandboxed,\n"
        " low-priority headless worker per GPU on lab computers.\n"
    )


def write_debian_dir(root: Path, version: str, arch: str) -> None:
    """DEBIAN/: control, md5sums and the maintainer scripts."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and "DEBIAN" not in p.parts)
    installed_kib = sum((p.stat().st_size + 1023) // 1024 for p in files)
    debian = root / "DEBIAN"
    _write(debian / "control", control_text(version, arch, installed_kib))
    md5 = "".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n"
        for p in files
    )
    _write(debian / "md5sums", md5)
    for script in ("postinst", "prerm", "postrm"):
        _copy(LINUX / script, debian / script, EXECUTABLE)


def build_deb(app: AppDir, out: Path, platform: str = "linux-x86_64") -> Path:
    """Build ganfriends_<version>_<arch>.deb into `out`; its path."""
    dpkg_deb = require_tool("dpkg-deb", "dpkg")
    arch = DEB_ARCH[platform]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ganfriends-deb-") as tmp:
        icons = build_icons(Path(tmp) / "icons")
        root = Path(tmp) / "root"
        stage_deb_tree(app, icons, root)
        write_debian_dir(root, app.version, arch)
        root.chmod(EXECUTABLE)
        for d in [p for p in root.rglob("*") if p.is_dir()]:
            d.chmod(EXECUTABLE)
        set_mtimes(root)
        deb = out / f"ganfriends_{app.version}_{arch}.deb"
        run_tool([dpkg_deb, "--root-owner-group", "-Zxz", "--build", str(root), str(deb)])
    return deb


def build_tarball(app: AppDir, out: Path, platform: str = "linux-x86_64") -> Path:
    """Build ganfriends-<version>-<platform>.tar.xz: a relocatable ganfriends/ folder."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ganfriends-tar-") as tmp:
        icons = build_icons(Path(tmp) / "icons")
        top = Path(tmp) / "ganfriends"
        copy_app_dir(app, top)
        here = 'APP="$(dirname "$(readlink -f "$0")")"'
        _write(top / "ganfriends", launcher_script(here, app.uv_name), EXECUTABLE)
        stage_shared_files(app, icons, top, "share")
        _copy(LINUX / "ganfriends_lab_setup.py", top / "ganfriends-lab-setup", EXECUTABLE)
        _copy(LINUX / "ganfriends-worker@.service", top / "systemd" / "ganfriends-worker@.service")
        _copy(LINUX / "ganfriends.sysusers.conf", top / "systemd" / "ganfriends.sysusers.conf")
        _copy(LINUX / "worker.env.example", top / "systemd" / "worker.env.example")
        set_mtimes(top)
        tarball = out / f"ganfriends-{app.version}-{platform}.tar.xz"
        epoch = source_date_epoch()

        def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            return info

        with tarfile.open(tarball, "w:xz") as tar:
            tar.add(top, arcname="ganfriends", filter=normalise)
    return tarball


def main(argv: list[str] | None = None) -> int:
    """CLI: build_deb.py [--platform KEY] [--app-dir DIR] --out DIR."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser, tuple(DEB_ARCH))
    parser.add_argument("--no-tarball", action="store_true", help="build only the .deb")
    args = parser.parse_args(argv)
    try:
        with app_dir_for(args.platform, args.app_dir) as app:
            print(build_deb(app, args.out, args.platform))
            if not args.no_tarball:
                print(build_tarball(app, args.out, args.platform))
    except BuildError as exc:
        print(f"build_deb: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Linux .deb and tarball: contents, lintian, desktop file, AppStream, and an install and
purge in a scratch root that leaves the user's data alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.installers.tools import need

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import build_app_dir  # noqa: E402
import build_deb  # noqa: E402
from build_contract import APP_ID, launch_args, read_app_dir  # noqa: E402
from build_icons import PNG_SIZES  # noqa: E402

PLATFORM = "linux-x86_64"
# Installed besides the app dir (under /opt/ganfriends).
SYSTEM_FILES = {
    "usr/bin/ganfriends",
    "usr/sbin/ganfriends-lab-setup",
    f"usr/share/applications/{APP_ID}.desktop",
    f"usr/share/metainfo/{APP_ID}.metainfo.xml",
    f"usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
    *(f"usr/share/icons/hicolor/{s}x{s}/apps/{APP_ID}.png" for s in PNG_SIZES),
    "usr/lib/systemd/system/ganfriends-worker@.service",
    "usr/lib/sysusers.d/ganfriends.conf",
    "usr/share/doc/ganfriends/copyright",
    "usr/share/doc/ganfriends/changelog.gz",
    "usr/share/doc/ganfriends/worker.env.example",
    "usr/share/man/man1/ganfriends.1.gz",
    "usr/share/man/man8/ganfriends-lab-setup.8.gz",
    "usr/share/lintian/overrides/ganfriends",
}
EXECUTABLES = {
    "opt/ganfriends/uv",
    "opt/ganfriends/ganfriends-bootstrap.pyz",  # a zipapp with a #! line
    "usr/bin/ganfriends",
    "usr/sbin/ganfriends-lab-setup",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real Linux app dir, the .deb and the tarball built from it (about 50 s)."""
    need("dpkg-deb", "dpkg")
    need("rsvg-convert", "librsvg2-bin")
    tmp = tmp_path_factory.mktemp("deb")
    app = read_app_dir(build_app_dir.build_app_dir(PLATFORM, tmp / "app"))
    deb = build_deb.build_deb(app, tmp / "out", PLATFORM)
    tarball = build_deb.build_tarball(app, tmp / "out", PLATFORM)
    tree = tmp / "tree"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return {"app": app.path, "deb": deb, "tarball": tarball, "tree": tree}


def app_files(app: Path) -> set[str]:
    return {p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.installers
def test_deb_holds_the_app_dir_in_opt_and_the_desktop_integration(built) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(built["deb"])], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    modes = {line.split()[-1].removeprefix("./"): line.split()[0] for line in listing}
    files = {path for path, mode in modes.items() if mode.startswith("-")}
    expected = {f"opt/ganfriends/{f}" for f in app_files(built["app"])} | SYSTEM_FILES
    assert files == expected
    assert {p for p in files if modes[p] == "-rwxr-xr-x"} == EXECUTABLES
    assert all(line.split()[1] == "root/root" for line in listing)
    print(f".deb: {built['deb'].stat().st_size / 2**20:.1f} MiB")


@pytest.mark.slow
@pytest.mark.installers
def test_deb_control_names_the_qt_runtime_libraries(built) -> None:
    control = subprocess.run(
        ["dpkg-deb", "-f", str(built["deb"]), "Package", "Architecture", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Package: ganfriends" in control and "Architecture: amd64" in control
    for lib in ("libxkbcommon-x11-0", "libxcb-cursor0", "libegl1", "libgl1", "libdbus-1-3"):
        assert lib in control


@pytest.mark.installers
def test_depends_cover_every_system_library_the_pyside6_wheel_loads() -> None:
    """objdump the installed PySide6 wheel's Qt and platform plugins; dpkg -S names the
    package of each library it does not bundle; each must be in DEPENDS."""
    need("objdump", "binutils")
    pyside = pytest.importorskip("PySide6")
    qt = Path(pyside.__file__).parent / "Qt"
    binaries = [*qt.glob("plugins/platforms/lib*.so"), *qt.glob("lib/libQt6*.so.6")]
    wanted = ("Core", "Gui", "Widgets", "DBus", "XcbQpa", "WaylandClient", "OpenGL", "qxcb")
    binaries = [b for b in binaries if any(w in b.name for w in wanted)]
    needed: set[str] = set()
    for binary in binaries:
        dump = subprocess.run(["objdump", "-p", str(binary)], capture_output=True, text=True)
        needed |= set(re.findall(r"NEEDED\s+(\S+)", dump.stdout))
    system = {lib for lib in needed if not (qt / "lib" / lib).exists()}
    depends = {alt.strip() for dep in build_deb.DEPENDS for alt in dep.split("|")}
    missing = {}
    for lib in sorted(system):
        found = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        if found.returncode == 0:
            package = found.stdout.split(":")[0].split(",")[0].strip()
        else:  # not installed here: Debian's library naming, libfoo-bar.so.0 -> libfoo-bar0
            soname = re.fullmatch(r"(.+)\.so\.(\d+)", lib)
            assert soname, lib
            name, version = soname.groups()
            package = name.lower() + ("-" if name[-1].isdigit() else "") + version
        if package not in depends:
            missing[lib] = package
    assert not missing, f"add to build_deb.DEPENDS: {missing}"


@pytest.mark.slow
@pytest.mark.installers
def test_lintian_reports_no_errors_or_warnings(built) -> None:
    lintian = need("lintian", "lintian")
    done = subprocess.run(
        [lintian, "--pedantic", "--display-experimental", "--fail-on", "none", str(built["deb"])],
        capture_output=True,
        text=True,
    )
    tags = [line for line in done.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    print("lintian tags:", tags or "none")
    assert not [t for t in tags if t[0] in "EW"], done.stdout


@pytest.mark.slow
@pytest.mark.installers
def test_desktop_file_and_appstream_metadata_validate(built) -> None:
    tree = built["tree"]
    need("desktop-file-validate", "desktop-file-utils")
    need("appstreamcli", "appstream")
    desktop = tree / f"usr/share/applications/{APP_ID}.desktop"
    done = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout
    for cmd in (
        ["appstreamcli", "validate", "--pedantic", "--no-net", str(tree / "usr/share/metainfo")],
        ["appstreamcli", "validate-tree", "--pedantic", "--no-net", str(tree)],
    ):
        if cmd[1] == "validate":
            cmd[-1] = str(next((tree / "usr/share/metainfo").glob("*.xml")))
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    version = (built["app"] / "VERSION").read_text().strip()
    assert (
        f'<release version="{version}"'
        in (tree / "usr/share/metainfo" / f"{APP_ID}.metainfo.xml").read_text()
    )


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """dpkg on a scratch root, running the maintainer scripts outside a chroot (DPKG_ROOT)."""
    cmd = ["dpkg", f"--instdir={root}", f"--admindir={root}/var/lib/dpkg"]
    cmd += ["--force-script-chrootless", "--force-depends", "--log=/dev/null"]
    if os.geteuid() != 0:
        cmd.append("--force-not-root")
    return subprocess.run([*cmd, *args], capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.installers
def test_install_and_purge_in_a_scratch_root_leave_the_users_data_alone(built, tmp_path) -> None:
    root = tmp_path / "root"
    for d in ("etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    user_env = root / "home/alice/.local/share/ganfriends/env"
    user_env.mkdir(parents=True)
    (user_env / "ganfriends-stamp.json").write_text("{}")
    before = sorted(p.relative_to(root) for p in (root / "home").rglob("*"))

    done = dpkg(root, "--install", str(built["deb"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "opt/ganfriends/uv").is_file() and (root / "usr/bin/ganfriends").is_file()
    if shutil.which("systemd-sysusers"):  # postinst made the services' system user
        assert re.search(r"^ganfriends:x:\d+:\d+:", (root / "etc/passwd").read_text(), re.M)
    # What ganfriends-lab-setup and the services leave behind, which purge must remove.
    (root / "etc/ganfriends").mkdir()
    (root / "etc/ganfriends/worker.env").write_text("GANFRIENDS_INVITE='x'\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "ganfriends-worker@cpu.service").symlink_to("/usr/lib/systemd/system/x")
    (root / "var/lib/ganfriends-worker/env").mkdir(parents=True)

    done = dpkg(root, "--purge", "ganfriends")
    assert done.returncode == 0, done.stdout + done.stderr
    for gone in (
        "opt/ganfriends",
        "usr/bin/ganfriends",
        "etc/ganfriends",
        "var/lib/ganfriends-worker",
    ):
        assert not (root / gone).exists(), gone
    assert not list(wants.iterdir())
    assert sorted(p.relative_to(root) for p in (root / "home").rglob("*")) == before


@pytest.mark.slow
@pytest.mark.installers
def test_tarball_is_a_relocatable_folder_whose_launcher_runs_the_contract(built, tmp_path) -> None:
    with tarfile.open(built["tarball"]) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        tar.extractall(tmp_path / "x", filter="data")
    assert {f"ganfriends/{f}" for f in app_files(built["app"])} <= names
    assert {"ganfriends/ganfriends", f"ganfriends/share/applications/{APP_ID}.desktop"} <= names
    top = tmp_path / "x" / "moved"
    (tmp_path / "x" / "ganfriends").rename(top)  # relocatable: works from any folder
    # A stand-in uv that prints its arguments, one per line.
    (top / "uv").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    done = subprocess.run([str(top / "ganfriends"), "--repair"], capture_output=True, text=True)
    assert done.stdout.splitlines() == launch_args(str(top), "uv", extra=["--repair"])[1:]
    print(f"tarball: {built['tarball'].stat().st_size / 2**20:.1f} MiB")


def test_deb_launcher_runs_the_launch_contract_from_opt() -> None:
    script = build_deb.launcher_script("APP=/opt/ganfriends", "uv")
    assert script.startswith("#!/bin/sh\n")
    assert '"$APP/uv" "run" "--no-project" "--no-config" "--python" ">=3.11"' in script
    assert script.rstrip().endswith('"--app-dir" "$APP" "$@"')

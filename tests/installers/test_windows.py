"""The Windows installers: the NSIS .exe and the MSI build, hold exactly the app dir, and ship
the pinned uv."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.installers.tools import need

INSTALLERS = Path(__file__).resolve().parents[2] / "installers"
sys.path.insert(0, str(INSTALLERS))

import build_app_dir  # noqa: E402
import build_windows  # noqa: E402
import fetch_uv  # noqa: E402
from build_contract import launch_args, read_app_dir  # noqa: E402

PLATFORM = "windows-x86_64"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real Windows app dir and both installers built from it (about 35 s)."""
    for tool, package in (("makensis", "nsis"), ("wixl", "wixl"), ("msiextract", "msitools")):
        need(tool, package)
    need("7z", "p7zip-full")
    need("rsvg-convert", "librsvg2-bin")
    tmp = tmp_path_factory.mktemp("windows")
    app = read_app_dir(build_app_dir.build_app_dir(PLATFORM, tmp / "app"))
    return {
        "app": app.path,
        "exe": build_windows.build_nsis(app, tmp / "out"),
        "msi": build_windows.build_msi(app, tmp / "out"),
    }


def app_files(app: Path) -> set[str]:
    return {p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file()}


def nsis_payload(exe: Path) -> set[str]:
    """The files an NSIS installer unpacks into $INSTDIR (7z lists them)."""
    listing = subprocess.run(["7z", "l", "-slt", str(exe)], capture_output=True, text=True)
    names = re.findall(r"^Path = (.+)$", listing.stdout, re.M)[1:]  # the first is the archive
    return {n for n in names if not n.startswith("$PLUGINSDIR")} - {"uninstall.exe"}


def msi_payload(msi: Path) -> set[str]:
    listing = subprocess.run(["msiextract", "-l", str(msi)], capture_output=True, text=True)
    return {line.removeprefix("ganfriends/") for line in listing.stdout.split()}


@pytest.mark.slow
@pytest.mark.installers
def test_nsis_installer_holds_exactly_the_app_dir_and_the_launcher(built) -> None:
    assert nsis_payload(built["exe"]) == app_files(built["app"]) | {"ganfriends.exe"}
    size = built["exe"].stat().st_size
    print(f"NSIS installer: {size / 2**20:.1f} MiB")
    assert size < 40 * 2**20


@pytest.mark.slow
@pytest.mark.installers
def test_msi_holds_exactly_the_app_dir_and_the_lab_files(built) -> None:
    expected = app_files(built["app"]) | set(build_windows.MSI_EXTRA)
    assert msi_payload(built["msi"]) == expected
    print(f"MSI: {built['msi'].stat().st_size / 2**20:.1f} MiB")


def pinned_uv_sha256() -> str:
    """sha256 of uv.exe inside the pinned wheel (whose own sha256 fetch_uv checks)."""
    wheel = fetch_uv.cached_wheel(PLATFORM)
    with zipfile.ZipFile(wheel) as zf:
        (member,) = [m for m in zf.namelist() if m.endswith(".data/scripts/uv.exe")]
        return hashlib.sha256(zf.read(member)).hexdigest()


@pytest.mark.slow
@pytest.mark.installers
def test_both_installers_ship_the_pinned_uv(built, tmp_path: Path) -> None:
    want = pinned_uv_sha256()
    subprocess.run(
        ["7z", "e", "-y", f"-o{tmp_path / 'exe'}", str(built["exe"]), "uv.exe"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["msiextract", "-C", str(tmp_path / "msi"), str(built["msi"])],
        check=True,
        capture_output=True,
    )
    for uv in (tmp_path / "exe" / "uv.exe", tmp_path / "msi" / "ganfriends" / "uv.exe"):
        assert hashlib.sha256(uv.read_bytes()).hexdigest() == want, uv


def msi_table(msi: Path, table: str) -> list[list[str]]:
    out = subprocess.run(["msiinfo", "export", str(msi), table], capture_output=True, text=True)
    return [line.split("\t") for line in out.stdout.splitlines()[3:]]  # 3 header lines


@pytest.mark.slow
@pytest.mark.installers
def test_msi_takes_the_lab_properties_and_runs_its_actions_inside_the_script(built) -> None:
    props = dict(row[:2] for row in msi_table(built["msi"], "Property"))
    assert props["ALLUSERS"] == "1"  # per-machine
    assert props["START_AT_LOGIN"] == props["WORKER_SERVICE"] == "0"
    assert set(build_windows.MSI_PROPERTIES) <= set(props["SecureCustomProperties"].split(";"))
    assert props["MsiHiddenProperties"] == "INVITE_CODE"
    seq = {
        row[0]: (row[1], int(row[2])) for row in msi_table(built["msi"], "InstallExecuteSequence")
    }
    init, final = seq["InstallInitialize"][1], seq["InstallFinalize"][1]
    assert init < seq["WorkerServiceUninstall"][1] < seq["RemoveFiles"][1]
    for action in ("StartAtLogin", "WorkerServiceInstall"):
        assert seq["InstallFiles"][1] < seq[action][1] < final
    assert seq["WorkerServiceInstall"][0] == 'WORKER_SERVICE = "1" AND NOT REMOVE'
    actions = {row[0]: row for row in msi_table(built["msi"], "CustomAction")}
    assert 'install "[INVITE_CODE]"' in actions["WorkerServiceInstall"][3]
    # 50 (exe from a property) + in-script 1024 + no-impersonate 2048: deferred, as SYSTEM.
    assert int(actions["WorkerServiceInstall"][1]) == 50 + 1024 + 2048


@pytest.mark.slow
@pytest.mark.installers
def test_worker_task_runs_the_worker_as_local_service_at_idle_priority(built, tmp_path) -> None:
    subprocess.run(
        ["msiextract", "-C", str(tmp_path), str(built["msi"])], check=True, capture_output=True
    )
    folder = tmp_path / "ganfriends"
    raw = (folder / build_windows.TASK_XML).read_bytes()
    assert raw[:2] == b"\xff\xfe"  # UTF-16 with a BOM, as schtasks /XML expects
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    task = ET.fromstring(raw.decode("utf-16").split("?>", 1)[1])
    assert task.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns) == "S-1-5-19"
    assert task.findtext("t:Settings/t:Priority", namespaces=ns) == "9"
    assert task.find("t:Triggers/t:BootTrigger", ns) is not None
    command = task.findtext("t:Actions/t:Exec/t:Command", namespaces=ns)
    assert command == "%ProgramFiles%\\ganfriends\\" + build_windows.WORKER_CMD
    cmd = (folder / build_windows.WORKER_CMD).read_bytes()
    assert b"\r\n" in cmd and b"\n" not in cmd.replace(b"\r\n", b"")  # CRLF for cmd.exe
    assert (folder / build_windows.SERVICE_CMD).read_bytes().count(b"\r\n") > 10


def test_worker_cmd_runs_the_launch_contract_with_worker() -> None:
    text = build_windows.worker_cmd_text("uv.exe")
    args = launch_args("%APP%", "uv.exe", sep="\\", extra=["--worker", "--", "--device", "auto"])
    assert text.rstrip().splitlines()[-1] == " ".join(f'"{a}"' for a in args)
    assert "ganfriends\\worker.env" in text


def test_uninstaller_deletes_only_the_files_it_installed(tmp_path: Path) -> None:
    files = ["uv.exe", "VERSION", "locks/windows-x86_64-cpu.txt", "ganfriends.exe"]
    text = build_windows.nsis_file_lines(files, tmp_path)
    deletes = re.findall(r'^  Delete "\$INSTDIR\\(.+)"$', text, re.M)
    assert sorted(deletes) == sorted(f.replace("/", "\\") for f in files)
    assert 'RMDir "$INSTDIR\\locks"' in text and "/r" not in text
    assert len(re.findall(r"^  File ", text, re.M)) == len(files)

"""Build the Windows installers from an app dir: the per-user NSIS .exe and the lab MSI."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

from build_contract import (
    INSTALLERS,
    AppDir,
    BuildError,
    add_common_args,
    app_dir_for,
    launch_args,
    require_tool,
    run_tool,
    set_mtimes,
)
from build_icons import build_icons

WINDOWS = INSTALLERS / "windows"
# The MSI's identity: the UpgradeCode never changes, so a new version replaces the old one.
UPGRADE_CODE = "6E0C4B1D-3F7A-4C59-9D51-2B7A0E6C8F31"
GUID_NAMESPACE = uuid.UUID("0f9d3c52-6a41-4f0e-8a7b-3c2d1e0f9a87")  # stable component GUIDs
# Files the Windows installers add to the app dir.
LAUNCHER = "ganfriends.exe"  # starts the app without a console window
WORKER_CMD = "ganfriends-worker.cmd"  # what the scheduled task runs
SERVICE_CMD = "ganfriends-service.cmd"  # the MSI's WORKER_SERVICE custom actions
TASK_XML = "ganfriends-worker-task.xml"
NSIS_EXTRA = (LAUNCHER,)
MSI_EXTRA = (LAUNCHER, WORKER_CMD, SERVICE_CMD, TASK_XML)
MSI_PROPERTIES = ("INVITE_CODE", "START_AT_LOGIN", "WORKER_SERVICE")


def nsis_quoted(words: Sequence[str]) -> str:
    """Words for a Windows command line, each in double quotes (none may hold one)."""
    if any('"' in w for w in words):
        raise BuildError(f"a launch argument holds a double quote: {words}")
    return " ".join(f'"{w}"' for w in words)


def worker_cmd_text(uv_name: str) -> str:
    """ganfriends-worker.cmd: read worker.env, then run the launch contract with --worker."""
    args = launch_args("%APP%", uv_name, sep="\\", extra=["--worker", "--", "--device", "auto"])
    lines = [
        "@echo off",
        "rem The scheduled task's command: the headless worker, joining the run named in",
        "rem %ProgramData%\\ganfriends\\worker.env (KEY=VALUE lines, like the Linux worker.env).",
        "setlocal",
        'set "APP=%~dp0"',
        'set "APP=%APP:~0,-1%"',
        'for /f "usebackq eol=# tokens=1,* delims==" %%a in '
        '("%ProgramData%\\ganfriends\\worker.env") do set "%%a=%%b"',
        nsis_quoted(args),
    ]
    return "\r\n".join(lines) + "\r\n"


def stage_windows_app(app: AppDir, icon: Path, dest: Path, extra: Sequence[str]) -> list[str]:
    """Copy the app dir to `dest` and add the `extra` Windows files; the sorted file list."""
    shutil.copytree(app.path, dest)
    if LAUNCHER in extra:
        build_launcher(app, icon, dest / LAUNCHER)
    if WORKER_CMD in extra:
        (dest / WORKER_CMD).write_bytes(worker_cmd_text(app.uv_name).encode("ascii"))
    if SERVICE_CMD in extra:
        text = (WINDOWS / SERVICE_CMD).read_text(encoding="utf-8")
        (dest / SERVICE_CMD).write_bytes(text.replace("\n", "\r\n").encode("ascii"))
    if TASK_XML in extra:
        text = (WINDOWS / TASK_XML).read_text(encoding="utf-8")
        (dest / TASK_XML).write_bytes(text.replace("\n", "\r\n").encode("utf-16"))  # with BOM
    set_mtimes(dest)
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


def build_launcher(app: AppDir, icon: Path, out: Path) -> Path:
    """Compile installers/windows/launcher.nsi into the console-less ganfriends.exe."""
    makensis = require_tool("makensis", "nsis")
    args = launch_args("$EXEDIR", app.uv_name, sep="\\")[1:]  # the exe itself is in the .nsi
    launch = nsis_quoted(args).replace("$", "$$").replace("$$EXEDIR", "$EXEDIR")
    run_tool(
        [
            makensis,
            "-V2",
            "-INPUTCHARSET",
            "UTF8",
            f"-DOUTFILE={out}",
            f"-DICON={icon}",
            f"-DVERSION={app.version}",
            f"-DLAUNCH={launch}",
            str(WINDOWS / "launcher.nsi"),
        ]
    )
    return out


def nsis_file_lines(files: Sequence[str], stage: Path) -> str:
    """The include for ganfriends.nsi: File lines to install, Delete/RMDir lines to uninstall."""
    install, uninstall = ["!ifdef FILES_INSTALL"], ["!ifdef FILES_UNINSTALL"]
    folders = sorted({str(PureWindowsPath(f).parent) for f in files} - {"."})
    for folder in ["", *folders]:
        out = "$INSTDIR" + (f"\\{folder}" if folder else "")
        install.append(f'  SetOutPath "{out}"')
        for f in files:
            if str(PureWindowsPath(f).parent) == (folder or "."):
                install.append(f'  File "{stage / f}"')
                uninstall.append(f'  Delete "$INSTDIR\\{PureWindowsPath(f)}"')
    uninstall += [f'  RMDir "$INSTDIR\\{d}"' for d in reversed(folders)]
    return "\n".join([*install, "!endif", *uninstall, "!endif", ""])


def build_nsis(app: AppDir, out: Path) -> Path:
    """Build ganfriends-<version>-windows-x86_64-setup.exe (per-user) into `out`."""
    makensis = require_tool("makensis", "nsis")
    out.mkdir(parents=True, exist_ok=True)
    exe = out / f"ganfriends-{app.version}-windows-x86_64-setup.exe"
    with tempfile.TemporaryDirectory(prefix="ganfriends-nsis-") as tmp:
        icons = build_icons(Path(tmp) / "icons")
        stage = Path(tmp) / "app"
        files = stage_windows_app(app, icons.ico, stage, NSIS_EXTRA)
        include = Path(tmp) / "files.nsh"
        include.write_text(nsis_file_lines(files, stage), encoding="utf-8")
        run_tool(
            [
                makensis,
                "-V2",
                "-INPUTCHARSET",
                "UTF8",
                f"-DOUTFILE={exe}",
                f"-DICON={icons.ico}",
                f"-DVERSION={app.version}",
                f"-DFILES={include}",
                str(WINDOWS / "ganfriends.nsi"),
            ]
        )
    return exe


def _id(prefix: str, rel: str) -> str:
    """An MSI identifier for a file path (letters, digits, dots and underscores; ≤ 72 chars)."""
    ident = prefix + "".join(c if c.isalnum() or c in "._" else "_" for c in rel)
    return ident[:60] + "_" + uuid.uuid5(GUID_NAMESPACE, rel).hex[:8] if len(ident) > 70 else ident


def _guid(name: str) -> str:
    return str(uuid.uuid5(GUID_NAMESPACE, name)).upper()


def msi_wxs(app: AppDir, files: Sequence[str], stage: Path, icon: Path) -> str:
    """The WiX source of the per-machine lab MSI (the subset of WiX 3 that wixl compiles)."""
    wix = ET.Element("Wix", xmlns="http://schemas.microsoft.com/wix/2006/wi")
    product = ET.SubElement(
        wix,
        "Product",
        Id="*",
        Name="ganfriends",
        Language="1033",
        Version=app.version,
        Manufacturer="ganfriends contributors",
        UpgradeCode=UPGRADE_CODE,
    )
    ET.SubElement(
        product,
        "Package",
        InstallerVersion="500",
        Compressed="yes",
        InstallScope="perMachine",
        Description="ganfriends (lab roll-out)",
        Comments="Properties: INVITE_CODE, START_AT_LOGIN=1, WORKER_SERVICE=1",
    )
    ET.SubElement(product, "MajorUpgrade", DowngradeErrorMessage="A newer ganfriends is installed.")
    ET.SubElement(product, "Media", Id="1", Cabinet="ganfriends.cab", EmbedCab="yes")
    ET.SubElement(product, "Icon", Id="ganfriends.ico", SourceFile=str(icon))
    ET.SubElement(product, "Property", Id="ARPPRODUCTICON", Value="ganfriends.ico")
    ET.SubElement(product, "Property", Id="START_AT_LOGIN", Value="0")
    ET.SubElement(product, "Property", Id="WORKER_SERVICE", Value="0")
    # The invite stays out of the MSI log. (SecureCustomProperties: see build_msi.)
    ET.SubElement(product, "Property", Id="MsiHiddenProperties", Value="INVITE_CODE")

    target = ET.SubElement(product, "Directory", Id="TARGETDIR", Name="SourceDir")
    programs = ET.SubElement(target, "Directory", Id="ProgramFiles64Folder")
    install = ET.SubElement(programs, "Directory", Id="INSTALLDIR", Name="ganfriends")
    menu = ET.SubElement(target, "Directory", Id="ProgramMenuFolder")
    feature_refs: list[str] = []
    dirs: dict[str, ET.Element] = {".": install}
    for rel in files:
        parent = str(PureWindowsPath(rel).parent)
        if parent not in dirs:
            dirs[parent] = ET.SubElement(install, "Directory", Id=_id("dir_", parent), Name=parent)
        comp_id = _id("cmp_", rel)
        comp = ET.SubElement(dirs[parent], "Component", Id=comp_id, Guid=_guid(rel), Win64="yes")
        ET.SubElement(
            comp,
            "File",
            Id=_id("fil_", rel),
            Name=PureWindowsPath(rel).name,
            Source=str(stage / rel),
            KeyPath="yes",
        )
        feature_refs.append(comp_id)

    shortcut = ET.SubElement(menu, "Component", Id="cmp_shortcut", Guid=_guid("shortcut"))
    ET.SubElement(
        shortcut,
        "Shortcut",
        Id="StartMenuShortcut",
        Name="ganfriends",
        Target=f"[INSTALLDIR]{LAUNCHER}",
        WorkingDirectory="INSTALLDIR",
        Icon="ganfriends.ico",
    )
    ET.SubElement(
        shortcut,
        "RegistryValue",
        Root="HKLM",
        Key="Software\\ganfriends-installer",
        Name="StartMenuShortcut",
        Type="integer",
        Value="1",
        KeyPath="yes",
    )
    feature_refs.append("cmp_shortcut")

    feature = ET.SubElement(product, "Feature", Id="Complete", Title="ganfriends", Level="1")
    for ref in feature_refs:
        ET.SubElement(feature, "ComponentRef", Id=ref)

    # START_AT_LOGIN and WORKER_SERVICE: cmd.exe runs ganfriends-service.cmd as SYSTEM after
    # the files are in place, and again (uninstall) before they go. (wixl compiles neither
    # component nor feature conditions, so the Run key is written by the script too.)
    ET.SubElement(
        product, "CustomAction", Id="SetCmdExe", Property="CMDEXE", Value="[System64Folder]cmd.exe"
    )
    service = f'"[INSTALLDIR]{SERVICE_CMD}"'
    # (id, cmd.exe arguments, Return, condition, sequence number). Explicit numbers, since
    # wixl places Before=/After= actions unreliably; the standard sequence has
    # InstallInitialize 1500, RemoveFiles 3500, InstallFiles 4000, InstallFinalize 6600.
    installing = "AND NOT REMOVE"
    actions = (
        ("WorkerServiceUninstall", f'/c "{service} uninstall"', "ignore", 'REMOVE = "ALL"', 3490),
        (
            "StartAtLogin",
            f'/c "{service} login"',
            "check",
            f'START_AT_LOGIN = "1" {installing}',
            4010,
        ),
        (
            "WorkerServiceInstall",
            f'/c "{service} install "[INVITE_CODE]""',
            "check",
            f'WORKER_SERVICE = "1" {installing}',
            4020,
        ),
    )
    sequence = ET.SubElement(product, "InstallExecuteSequence")
    ET.SubElement(sequence, "Custom", Action="SetCmdExe", Sequence="1450").text = "1"
    for ca_id, args, result, condition, number in actions:
        ET.SubElement(
            product,
            "CustomAction",
            Id=ca_id,
            Property="CMDEXE",
            ExeCommand=args,
            Execute="deferred",
            Impersonate="no",
            Return=result,
        )
        ET.SubElement(sequence, "Custom", Action=ca_id, Sequence=str(number)).text = condition
    ET.indent(wix)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(wix, encoding="unicode") + "\n"


def build_msi(app: AppDir, out: Path) -> Path:
    """Build ganfriends-<version>-windows-x86_64.msi (per-machine, for labs) into `out`."""
    wixl = require_tool("wixl", "wixl")
    out.mkdir(parents=True, exist_ok=True)
    msi = out / f"ganfriends-{app.version}-windows-x86_64.msi"
    with tempfile.TemporaryDirectory(prefix="ganfriends-msi-") as tmp:
        icons = build_icons(Path(tmp) / "icons")
        stage = Path(tmp) / "app"
        files = stage_windows_app(app, icons.ico, stage, MSI_EXTRA)
        wxs = Path(tmp) / "ganfriends.wxs"
        # wixl resolves sources relative to the .wxs and rejects absolute paths.
        rel_icon = icons.ico.relative_to(tmp)
        wxs.write_text(msi_wxs(app, files, Path("app"), rel_icon), encoding="utf-8")
        run_tool([wixl, "--arch", "x64", "-o", str(msi.resolve()), wxs.name], cwd=Path(tmp))
    secure_properties(msi)
    return msi


def secure_properties(msi: Path) -> None:
    """List the MSI's public properties as secure, so they reach the elevated install.

    wixl writes SecureCustomProperties itself for MajorUpgrade and has no Secure attribute,
    so the row is rewritten afterwards.
    """
    msibuild = require_tool("msibuild", "msitools")
    value = ";".join(("WIX_DOWNGRADE_DETECTED", "WIX_UPGRADE_DETECTED", *MSI_PROPERTIES))
    query = f"UPDATE `Property` SET `Value` = '{value}' WHERE `Property` = 'SecureCustomProperties'"
    run_tool([msibuild, str(msi), "-q", query])


def main(argv: list[str] | None = None) -> int:
    """CLI: build_windows.py [--app-dir DIR] --out DIR builds the .exe and the .msi."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser, ("windows-x86_64",))
    args = parser.parse_args(argv)
    try:
        with app_dir_for(args.platform, args.app_dir) as app:
            if app.uv_name != "uv.exe":
                raise BuildError(f"{app.path} is not a Windows app dir (it has no uv.exe)")
            print(build_nsis(app, args.out))
            print(build_msi(app, args.out))
    except BuildError as exc:
        print(f"build_windows: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

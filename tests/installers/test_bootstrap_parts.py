"""Bootstrapper parts without a real install: lock choice, stamp, progress, args, self-test parsing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installers" / "bootstrap"))

from ganfriends_bootstrap import cli, environment, progress, selftest
from ganfriends_bootstrap.detect import Detection
from ganfriends_bootstrap.environment import EnvPaths, Stamp
from ganfriends_bootstrap.locks import (
    BootstrapError,
    LockNotFound,
    data_home,
    platform_key,
    select_lock,
    shipped_wheel,
)


def app_dir(tmp_path: Path, *locks: str) -> Path:
    (tmp_path / "locks").mkdir()
    for name in locks:
        (tmp_path / "locks" / name).write_text("x==1\n")
    return tmp_path


@pytest.mark.parametrize(
    ("system", "machine", "key"),
    [
        ("Linux", "x86_64", "linux-x86_64"),
        ("Linux", "aarch64", "linux-aarch64"),
        ("Windows", "AMD64", "windows-x86_64"),
        ("Darwin", "arm64", "macos-arm64"),
        ("Darwin", "x86_64", "macos-x86_64"),
    ],
)
def test_platform_key(system: str, machine: str, key: str) -> None:
    assert platform_key(system, machine) == key


def test_lock_for_the_detected_variant(tmp_path: Path) -> None:
    app = app_dir(tmp_path, "linux-x86_64-cpu.txt", "linux-x86_64-cu130.txt")
    choice = select_lock(app, "linux-x86_64", Detection("cu130", "", ("cu130", "cu128", "cpu")))
    assert (choice.variant, choice.path.name, choice.note) == (
        "cu130",
        "linux-x86_64-cu130.txt",
        None,
    )


def test_missing_variant_falls_back_and_says_so(tmp_path: Path) -> None:
    app = app_dir(tmp_path, "linux-x86_64-cpu.txt", "linux-x86_64-cu130.txt")
    choice = select_lock(app, "linux-x86_64", Detection("cu128", "", ("cu128", "cu126", "cpu")))
    assert choice.variant == "cpu"
    assert choice.note is not None and "linux-x86_64-cu128.txt" in choice.note


def test_no_lock_names_the_missing_file(tmp_path: Path) -> None:
    app = app_dir(tmp_path, "windows-x86_64-cpu.txt")
    with pytest.raises(LockNotFound, match=r"macos-arm64-mps\.txt.*macos-arm64-cpu\.txt"):
        select_lock(app, "macos-arm64", Detection("mps", "", ("mps", "cpu")))


def test_overridden_variant_does_not_fall_back(tmp_path: Path) -> None:
    app = app_dir(tmp_path, "linux-x86_64-cpu.txt")
    with pytest.raises(LockNotFound, match=r"linux-x86_64-cu126\.txt"):
        select_lock(app, "linux-x86_64", Detection("cu126", "chosen", ("cu126",)))


def test_shipped_wheel_must_be_unique(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    with pytest.raises(BootstrapError, match="exactly one"):
        shipped_wheel(tmp_path)
    (tmp_path / "wheels" / "ganfriends-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert shipped_wheel(tmp_path).name == "ganfriends-0.1.0-py3-none-any.whl"


def test_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GANFRIENDS_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert data_home("Linux") == tmp_path / "xdg" / "ganfriends"
    assert data_home("Windows") == tmp_path / "local" / "ganfriends"
    assert data_home("Darwin") == Path.home() / "Library/Application Support/ganfriends"
    monkeypatch.setenv("GANFRIENDS_HOME", str(tmp_path / "override"))
    assert data_home("Linux") == tmp_path / "override"


def fake_env(tmp_path: Path) -> EnvPaths:
    paths = EnvPaths(tmp_path)
    paths.python().parent.mkdir(parents=True)
    paths.python().write_text("")
    return paths


def test_stamp_decides_the_no_op(tmp_path: Path) -> None:
    paths = fake_env(tmp_path)
    want = Stamp("lock-sha", "wheel-sha", "cpu")
    assert not environment.is_current(paths, want)  # never built
    paths.in_progress.write_text("1")
    environment.write_stamp(paths, want)
    assert environment.is_current(paths, want)
    assert not paths.in_progress.exists()
    for changed in (Stamp("new", "wheel-sha", "cpu"), Stamp("lock-sha", "new", "cpu")):
        assert not environment.is_current(paths, changed)
    assert not environment.is_current(paths, Stamp("lock-sha", "wheel-sha", "cu130"))


def test_half_written_stamp_counts_as_absent(tmp_path: Path) -> None:
    paths = fake_env(tmp_path)
    paths.stamp.write_text('{"lock_sha256": "a", "wheel_')
    assert environment.read_stamp(paths) is None


def test_network_failure_gets_a_next_step() -> None:
    out = "error: Request failed after 3 retries\n  cause: tcp connect error\n"
    with pytest.raises(environment.NetworkError, match="could not reach the package index X"):
        environment._check(2, out, "downloading", "X")
    with pytest.raises(BootstrapError, match="--repair") as info:
        environment._check(2, "error: disk full", "downloading", "X")
    assert not isinstance(info.value, environment.NetworkError)


def test_download_tally_counts_bytes() -> None:
    tally = progress.DownloadTally()
    assert tally.feed("Downloading torch (858.3MiB)\n") == "downloading torch (899.99 MB)"
    tally.feed("Downloading numpy (16.1MiB)")
    assert tally.feed("Resolved 40 packages in 1s") is None
    shown = tally.feed(" Downloaded numpy")
    assert shown == "downloaded numpy: 16.88 MB of 916.87 MB (1 of 2 large packages)"


def test_run_uv_heartbeat_speaks_during_silence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.2)
    lines: list[str] = []
    slow = [
        sys.executable,
        "-c",
        "import time; print('Downloading x (1.0MiB)', flush=True); time.sleep(1)",
    ]
    code, out = progress.run_uv(slow, lines.append, tmp_path)
    assert code == 0 and "Downloading x" in out
    assert any("written to the package cache" in line for line in lines), lines


def test_worker_args_after_double_dash(tmp_path: Path) -> None:
    args, rest = cli.parse_args(["--app-dir", str(tmp_path), "--worker", "--", "--invite", "gf1-x"])
    assert (args.worker, rest) == (True, ["--invite", "gf1-x"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--app-dir", str(tmp_path), "--", "--invite", "gf1-x"])


def test_self_test_names_the_failed_check(tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"check": "torch", "ok": true, "detail": "torch 2.13"}\'\n'
        'echo \'{"check": "torchvision", "ok": false, "detail": "RuntimeError: nms"}\'\n'
        "exit 1\n"
    )
    script.chmod(0o755)
    with pytest.raises(selftest.SelfTestFailed, match="check 'torchvision' failed"):
        selftest.run_self_test(script, "cpu", lambda line: None)


def test_self_test_crash_names_the_check_that_did_not_report(tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"check": "torch", "ok": true, "detail": ""}\'\n'
        'echo \'{"check": "torchvision", "ok": true, "detail": ""}\'\n'
        "kill -SEGV $$\n"
    )
    script.chmod(0o755)
    with pytest.raises(selftest.SelfTestFailed, match="check 'qt' crashed"):
        selftest.run_self_test(script, "cpu", lambda line: None)

"""Both command lines in-process: bad input gives one clear line and writes nothing; the happy path."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from coordinator import admin, cli, presets
from coordinator.demo import DEMO_MODEL, DEMO_SETTINGS
from coordinator.loop import Coordinator
from core import progress, worker_cli
from core.config import RunSettings
from core.export import load_model
from core.model import ModelConfig
from core.store import open_store
from tests.coordinator.harness import TinyRun, make_tiny_run
from tests.coordinator.simulate import LocalWorker, run_to

Main = Callable[[Sequence[str] | None], int]

TINY_TOML = """
[model]
image_size = 32
g_features = 4
d_features = 4

[training]
images_per_work_unit = 16
batch_size = 8
"""


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder; logs and caches elsewhere; no database from the environment."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GANFRIENDS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("GANFRIENDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFRIENDS_DB", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield cwd
    # main() configures logging each call: drop its handlers (they hold capsys's stream).
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def one_line_error(capsys: pytest.CaptureFixture[str], main: Main, argv: list[str]) -> str:
    """Run a command that must fail by itself; its only output: one line on stderr."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


def usage_error(capsys: pytest.CaptureFixture[str], main: Main, argv: list[str]) -> str:
    """Run a command argparse refuses: usage, then one error line, exit code 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def succeeds(capsys: pytest.CaptureFixture[str], main: Main, argv: list[str]) -> str:
    """Run a command that must work; its stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


# Commands on a database that is not there ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "--db", "sqlite:///missing/dir/x.db"], "no database at"),
        (["status"], "--db"),
        (["status", "--db", "nonsense://x"], "not a database URL"),
        (["status", "--db", "not-a-url"], "not a database URL"),
        (["workers", "--db", "sqlite:///x.db"], "no database at"),
        (["pause", "--db", "sqlite:///x.db"], "no database at"),
        (["set", "--db", "sqlite:///x.db", "lr=0.001"], "no database at"),
        (["export", "--db", "sqlite:///x.db", "--out", "m.safetensors"], "no database at"),
        (["samples", "--db", "sqlite:///x.db", "--out", "samples"], "no database at"),
    ],
)
def test_no_database(
    capsys: pytest.CaptureFixture[str], workdir: Path, argv: list[str], expected: str
) -> None:
    line = one_line_error(capsys, cli.main, argv)
    assert expected in line
    assert line.startswith(f"ganfriends-coordinator {argv[0]}: ")
    assert files_under(workdir) == set()


# `set` on a real run ---------------------------------------------------------------------------


@pytest.fixture
def tiny_run(tmp_path: Path) -> TinyRun:
    return make_tiny_run(tmp_path)


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("foo=1", "'foo' cannot be changed"),
        ("lr=-1", "lr must be a number in (0, 1], not -1.0"),
        # The typos an owner made that the run could not survive (issue "Run integrity").
        ("lr=inf", "lr must be a number in (0, 1], not inf"),
        ("lr=1e300", "lr must be a number in (0, 1]"),
        ("lr=nan", "lr must be a number in (0, 1], not nan"),
        ("lease_s=inf", "lease_s must be a number in [1, 86400]"),
        ("lease_s=1e-9", "lease_s must be a number in [1, 86400]"),
        ("max_payload_mb=inf", "max_payload_mb must be a number in (0, 4096]"),
        ("num_workunits_per_update=100000000", "must be a whole number in [1, 4096]"),
        ("norm_factor=inf", "norm_factor must be a number in (0, 1e+06]"),
        ("backup_after_s=inf", "backup_after_s must be a number in [0, 86400]"),
        ("batch_size=8", "'batch_size' cannot be changed"),
        ("lease_s=abc", "lease_s must be a number"),
        ("lr", "is not KEY=VALUE"),
        ("max_attempts=0", "max_attempts must be a whole number"),
    ],
)
def test_set_refuses_bad_values(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, pair: str, expected: str
) -> None:
    store = tiny_run.store()
    before, events = store.get_run(), store.events(1000)
    line = one_line_error(capsys, cli.main, ["set", "--db", tiny_run.url, "lr=0.001", pair])
    assert expected in line
    assert store.get_run() == before  # not even the valid lr=0.001 was applied
    assert store.events(1000) == events


# `init` ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "dataset", "expected"),
    [
        (None, "/nonexistent/folder", "no dataset at /nonexistent/folder"),
        (None, "synthetic:0", "'synthetic:0' is not a valid synthetic dataset"),
        (None, "synthetic:abc", "'synthetic:abc' is not a valid synthetic dataset"),
        ("x = [\n", "synthetic:64", "is not valid TOML"),
        ("[optimizer]\nlr = 0.1\n", "synthetic:64", "unknown section(s) ['optimizer']"),
        ("[training]\nlr = -1\n", "synthetic:64", "[training]: lr must be a number in (0, 1]"),
        ("[training]\nbatch_size = -8\n", "synthetic:64", "batch_size must be a whole number"),
        ("[model]\ng_features = -4\n", "synthetic:64", "[model]: g_features must be"),
        ("training = 3\n", "synthetic:64", "must be a [training] table"),
        ("[training]\nfoo = 1\n", "synthetic:64", "unknown setting(s): foo"),
    ],
)
def test_init_refuses_bad_input(
    capsys: pytest.CaptureFixture[str],
    workdir: Path,
    tmp_path: Path,
    config: str | None,
    dataset: str,
    expected: str,
) -> None:
    argv = ["init", "--db", "sqlite:///new/run.db", "--dataset", dataset]
    if config is not None:
        path = tmp_path / "bad.toml"
        path.write_text(config)
        argv += ["--config", str(path)]
    line = one_line_error(capsys, cli.main, argv)
    assert expected in line
    assert files_under(workdir) == set()


def test_init_preset_demo_is_the_demo_recipe(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    argv = ["init", "--db", "sqlite:///demo.db", "--preset", "demo", "--dataset", "synthetic:256"]
    assert cli.main(argv) == 0
    store = open_store("sqlite:///demo.db")
    try:
        run = store.get_run()
    finally:
        store.dispose()
    assert ModelConfig.from_dict(run.model_config) == DEMO_MODEL
    assert RunSettings.from_dict(run.settings) == DEMO_SETTINGS
    assert run.dataset_size == 256


def test_init_preset_class_is_the_local_steps_recipe(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    argv = ["init", "--db", "sqlite:///class.db", "--preset", "class", "--dataset", "synthetic:256"]
    assert cli.main(argv) == 0
    store = open_store("sqlite:///class.db")
    try:
        run = store.get_run()
    finally:
        store.dispose()
    settings = RunSettings.from_dict(run.settings)
    assert ModelConfig.from_dict(run.model_config) == presets.CLASS_MODEL
    assert settings == presets.CLASS_SETTINGS
    assert (settings.inner_steps, settings.images_per_work_unit) == (64, 4096)
    assert admin.unit_kind_text(settings).startswith("local steps (64 inner SGD steps")


def test_init_config_overrides_the_preset(
    capsys: pytest.CaptureFixture[str], workdir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "bigger.toml"
    config.write_text("[model]\nimage_size = 64\n\n[training]\nlr = 0.0005\n")
    argv = ["init", "--db", "sqlite:///x.db", "--preset", "demo", "--config", str(config)]
    assert cli.main([*argv, "--dataset", "synthetic:256"]) == 0
    store = open_store("sqlite:///x.db")
    try:
        run = store.get_run()
    finally:
        store.dispose()
    assert ModelConfig.from_dict(run.model_config) == dataclasses.replace(DEMO_MODEL, image_size=64)
    assert RunSettings.from_dict(run.settings) == dataclasses.replace(DEMO_SETTINGS, lr=0.0005)


def test_init_help_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["init", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for name, text in cli.PRESETS.items():
        assert f"  {name:<8}{text}" in out


def test_init_prints_a_summary_of_the_images(
    capsys: pytest.CaptureFixture[str], workdir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(70):
        colour = (i, 255 - i, 3 * i, 255 if i % 2 else 0)  # half of them fully transparent
        Image.new("RGBA", (40, 40), colour).save(photos / f"{i:03d}.png")
    (photos / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (8, 8)).save(photos / "tiny.png")
    (photos / "loop").symlink_to(photos, target_is_directory=True)
    argv = ["init", "--db", "sqlite:///p.db", "--dataset", str(photos), "--background", "#102030"]
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    assert cli.main([*argv, "--config", str(tmp_path / "tiny.toml")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:4] == [
        "72 images found, 70 used, 2 skipped",
        "  link loop: 1 (loop)",
        "  unreadable: 1 (broken.png)",
        "  too small: 1 (tiny.png)",
    ]
    assert "Warning" not in err
    store = open_store("sqlite:///p.db")
    try:
        first = store.shard(0).data[: 3 * 32 * 32]  # 000.png: fully transparent
    finally:
        store.dispose()
    assert set(first[: 32 * 32]) == {0x10} and set(first[-32 * 32 :]) == {0x30}


def test_init_tells_a_log_how_far_the_ingestion_is(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
    tmp_path: Path,
) -> None:
    # stderr is captured, not a terminal: plain lines instead of a bar, here after every image
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(9):
        Image.new("RGB", (40, 40), (25 * i, 0, 0)).save(photos / f"{i}.png")
    (photos / "gone.png").symlink_to(photos / "nowhere.png")  # found, skipped before reading
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    argv = ["init", "--db", "sqlite:///p.db", "--dataset", str(photos)]
    assert cli.main([*argv, "--config", str(tmp_path / "tiny.toml")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "\r" not in "".join(lines)
    assert lines[0].startswith("ingesting images: 2 of 10 images (20%), 00:00, about 00:0")
    assert lines[-1].startswith("ingesting images: 10 of 10 images (100%), 00:0")
    assert len(lines) == 9, lines  # one per image read, the last one not repeated at the end


def test_init_refuses_an_unknown_background(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    argv = ["init", "--db", "sqlite:///x.db", "--background", "blurple"]
    assert "--background 'blurple' is not a colour" in one_line_error(capsys, cli.main, argv)
    assert files_under(workdir) == set()


def test_init_missing_config_file(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    argv = ["init", "--db", "sqlite:///run.db", "--config", "nope.toml"]
    assert "no config file at nope.toml" in one_line_error(capsys, cli.main, argv)
    assert files_under(workdir) == set()


def test_init_failing_while_ingesting_leaves_no_file_or_folder(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    # Found only once the shards are written: 2 images are fewer than one micro-batch of 64.
    argv = ["init", "--db", "sqlite:///new/dir/run.db", "--dataset", "synthetic:2"]
    assert "fewer than one micro-batch" in one_line_error(capsys, cli.main, argv)
    assert files_under(workdir) == set()


def test_init_twice_keeps_the_first_run(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun
) -> None:
    store = tiny_run.store()
    before, weights = store.get_run(), store.version_weights(0)
    argv = ["init", "--db", tiny_run.url, "--dataset", "synthetic:64", "--name", "second"]
    assert "already holds a run" in one_line_error(capsys, cli.main, argv)
    assert store.get_run() == before
    assert store.version_weights(0) == weights
    assert tiny_run.path.exists()


# `demo` ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo", "--workers", "0"], "--workers must be at least 1"),
        (["demo", "--rounds", "0"], "--rounds must be at least 1"),
        (["demo", "--minutes", "-1"], "--minutes must be more than 0"),
    ],
)
def test_demo_refuses_bad_limits(
    capsys: pytest.CaptureFixture[str], workdir: Path, argv: list[str], expected: str
) -> None:
    assert expected in one_line_error(capsys, cli.main, argv)
    assert files_under(workdir) == set()


# argparse's own errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["set", "--db", "sqlite:///x.db"], "KEY=VALUE"),
        (["demo", "--workers", "two"], "--workers"),
        (["demo", "--rounds", "3", "--minutes", "1"], "not allowed with argument"),
        (["frobnicate"], "frobnicate"),
        (["export", "--db", "sqlite:///x.db"], "--out"),
    ],
)
def test_coordinator_usage_errors(
    capsys: pytest.CaptureFixture[str], workdir: Path, argv: list[str], expected: str
) -> None:
    last = usage_error(capsys, cli.main, argv)
    assert last.startswith("ganfriends-coordinator")
    assert expected in last
    assert files_under(workdir) == set()


# The worker ------------------------------------------------------------------------------------


def test_worker_missing_database(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    argv = ["--db", "sqlite:///missing/x.db", "--device", "cpu"]
    line = one_line_error(capsys, worker_cli.main, argv)
    assert line.startswith("ganfriends-worker: no database at")
    assert files_under(workdir) == set()


def test_worker_bad_url(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    line = one_line_error(capsys, worker_cli.main, ["--db", "nonsense://x", "--device", "cpu"])
    assert "not a database URL" in line
    assert files_under(workdir) == set()


@pytest.mark.parametrize("device", ["cuda:7", "tpu"])
def test_worker_unusable_device(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun, device: str
) -> None:
    line = one_line_error(capsys, worker_cli.main, ["--db", tiny_run.url, "--device", device])
    assert line.startswith("ganfriends-worker: ")
    assert "GPU" in line if device.startswith("cuda") else "unknown device 'tpu'" in line
    assert tiny_run.store().workers() == []  # it never joined


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--db", "sqlite:///x.db", "--threads", "0"], "--threads: must be at least 1, not 0"),
        (["--db", "sqlite:///x.db", "--threads", "many"], "'many' is not a whole number"),
        ([], "--db"),
    ],
)
def test_worker_usage_errors(
    capsys: pytest.CaptureFixture[str], workdir: Path, argv: list[str], expected: str
) -> None:
    last = usage_error(capsys, worker_cli.main, argv)
    assert last.startswith("ganfriends-worker: error:")
    assert expected in last
    assert files_under(workdir) == set()


# The happy path --------------------------------------------------------------------------------


def status_json(capsys: pytest.CaptureFixture[str], db: str) -> dict[str, object]:
    status = json.loads(succeeds(capsys, cli.main, ["status", "--db", db, "--json"]))
    assert isinstance(status, dict)
    return status


def test_every_command_on_a_tiny_run(
    capsys: pytest.CaptureFixture[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "tiny.toml").write_text(TINY_TOML)
    db = "sqlite:///run.db"
    init = ["init", "--db", db, "--dataset", "synthetic:64", "--config", "tiny.toml"]
    assert "64 images, version 0 published" in succeeds(capsys, cli.main, init)

    table = succeeds(capsys, cli.main, ["status", "--db", db])
    assert "0 (epoch 0)" in table
    status = status_json(capsys, db)
    assert (status["version"], status["status"], status["dataset_images"]) == (0, "active", 64)
    assert status["units"] == {"pending": 4, "leased": 0, "submitted": 0, "done": 0, "parked": 0}

    assert succeeds(capsys, cli.main, ["workers", "--db", db]).strip() == "(none)"
    assert json.loads(succeeds(capsys, cli.main, ["workers", "--db", db, "--json"])) == []

    assert "paused" in succeeds(capsys, cli.main, ["pause", "--db", db])
    assert status_json(capsys, db)["status"] == "paused"
    assert "resumed" in succeeds(capsys, cli.main, ["resume", "--db", db])
    assert status_json(capsys, db)["status"] == "active"

    assert "set lr=0.001" in succeeds(capsys, cli.main, ["set", "--db", db, "lr=0.001"])
    assert status_json(capsys, db)["version"] == 0
    assert open_store(db).get_run().settings["lr"] == 0.001

    monkeypatch.setenv("GANFRIENDS_DB", db)  # stands in for --db
    assert status_json(capsys, db)["name"] == "ganfriends run"
    assert "version" in succeeds(capsys, cli.main, ["status"])

    out = succeeds(capsys, cli.main, ["export", "--db", db, "--out", "m.safetensors"])
    assert "wrote version 0" in out
    gan, version = load_model(workdir / "m.safetensors")
    assert version == 0
    with torch.no_grad():
        images = gan.G(torch.randn(5, gan.config.latent_dim, 1, 1))
    assert images.shape == (5, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1

    out = succeeds(capsys, cli.main, ["samples", "--db", db, "--out", "grids"])
    assert "wrote 0 sample grid(s)" in out
    assert (workdir / "grids").is_dir()


def test_status_counts_epochs_of_closed_versions(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun
) -> None:
    # 5 units per epoch, 3 per version: version 1 is still in epoch 0, version 2 in epoch 1.
    store = tiny_run.store()
    coordinator, worker = Coordinator(store), LocalWorker(tiny_run, store, "w")
    epochs = []
    for version in (0, 1, 2):
        run_to(coordinator, [worker], version)
        epochs.append(status_json(capsys, tiny_run.url)["epoch"])
    assert epochs == [0, 0, 1]


def test_status_says_how_long_ago_the_newest_version_was_published(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun
) -> None:
    store = tiny_run.store()
    run_to(Coordinator(store), [LocalWorker(tiny_run, store, "w")], 1)
    age = status_json(capsys, tiny_run.url)["version_age_s"]
    assert isinstance(age, float) and 0 <= age < 30
    assert "1 (epoch 0; published " in succeeds(capsys, cli.main, ["status", "--db", tiny_run.url])
    # Seen by an admin 90 minutes later: the run stopped, its images/s is that old.
    later = open_store(tiny_run.url, clock=lambda: time.time() + 90 * 60)
    status = admin.run_status(later)
    assert 90 * 60 <= status["version_age_s"] < 90 * 60 + 30
    assert cli._version_text(status).startswith("1 (epoch 0; published 1 h 3")


def test_status_and_workers_say_when_workers_wait_for_work(
    capsys: pytest.CaptureFixture[str], tiny_run: TinyRun
) -> None:
    store = tiny_run.store()  # 3 units per version
    for i in range(5):
        store.register_worker(f"w{i}", "h", "cpu")
    status = status_json(capsys, tiny_run.url)
    assert (status["units_per_version"], status["workers_waiting"]) == (3, 2)
    assert status["unit_kind"] == "gradients (exact synchronous training)"
    assert "set num_workunits_per_update=5" in str(status["advice"])
    out = succeeds(capsys, cli.main, ["workers", "--db", tiny_run.url])
    assert "2 of 5 active workers wait for work every version" in out
    succeeds(capsys, cli.main, ["set", "--db", tiny_run.url, "num_workunits_per_update=5"])
    status = status_json(capsys, tiny_run.url)
    assert (status["workers_waiting"], status["advice"]) == (0, None)

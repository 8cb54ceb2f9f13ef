"""Settings: saved as JSON, restored, and a broken file never stops the app."""

from __future__ import annotations

import dataclasses
import json
import stat

from client_gui.settings import (
    AppSettings,
    donation_policy,
    load_settings,
    save_settings,
    settings_path,
)
from core.throttle import WeeklySchedule


def test_settings_round_trip_through_the_config_folder(private_folders):
    settings = dataclasses.replace(
        AppSettings(),
        connection="sqlite:///x.db",
        donating=True,
        threads=2,
        duty_cycle=0.3,
        idle_only=True,
        schedule=((0, 18 * 60, 8 * 60), (6, 0, 1440)),
        snooze_until=1_900_000_000.0,
    )
    save_settings(settings)
    assert settings_path().parent == private_folders / "config"
    assert load_settings() == settings
    # The connection can hold an invite's password: only this user may read the file.
    assert stat.S_IMODE(settings_path().stat().st_mode) == 0o600


def test_missing_file_gives_defaults(private_folders):
    assert load_settings() == AppSettings()


def test_broken_file_is_set_aside_and_defaults_used(private_folders):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_settings() == AppSettings()
    assert path.with_suffix(".broken.json").read_text() == "{not json"
    assert not path.exists()


def test_wrong_values_fall_back_one_by_one(private_folders):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "duty_cycle": 7,  # clamped to the allowed range
                "idle_after_s": -5,  # invalid: default
                "threads": "many",  # invalid: default
                "schedule": [[9, 0, 60]],  # no weekday 9: default
                "device": "cuda:1",
                "unknown_key": 1,
            }
        )
    )
    settings = load_settings()
    assert settings.duty_cycle == 1.0
    assert settings.idle_after_s == AppSettings().idle_after_s
    assert settings.threads is None
    assert settings.schedule is None
    assert settings.device == "cuda:1"


def test_donation_policy_carries_every_limit():
    settings = dataclasses.replace(
        AppSettings(),
        snooze_until=5.0,
        duty_cycle=0.5,
        idle_only=True,
        idle_after_s=300.0,
        schedule=((6, 1320, 120),),
    )
    policy = donation_policy(settings)
    assert policy.snooze_until == 5.0 and policy.duty_cycle == 0.5
    assert policy.idle_only and policy.idle_after_s == 300.0
    assert policy.schedule == WeeklySchedule(((6, 1320, 120),))

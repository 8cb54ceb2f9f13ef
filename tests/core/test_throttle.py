"""Donation policy: snooze countdowns, the duty cycle, weekly schedules and idle-only."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.throttle import (
    DonationPolicy,
    PolicyError,
    WeeklySchedule,
    format_duration,
    pause_reason,
    rest_after_unit,
)

MONDAY = datetime(2024, 1, 1)  # a Monday, 00:00 local time


def at(weekday: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=weekday, hours=hour, minutes=minute)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (44.2, "45 s"),
        (60, "1 min"),
        (14 * 60, "14 min"),
        (3600, "1 h"),
        (2 * 3600 + 13 * 60 + 1, "2 h 14 min"),  # rounded up: a countdown never shows 0 early
        (3 * 3600, "3 h"),
    ],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert format_duration(seconds) == text


def test_snooze_counts_down_then_ends():
    now = at(0, 9)
    policy = DonationPolicy(snooze_until=now.timestamp() + 2 * 3600 + 13 * 60 + 30)
    assert pause_reason(policy, now, None) == "snoozed for 2 h 14 min"
    assert pause_reason(policy, now + timedelta(hours=2), None) == "snoozed for 14 min"
    assert pause_reason(policy, now + timedelta(hours=2, minutes=13), None) == "snoozed for 30 s"
    assert pause_reason(policy, now + timedelta(hours=2, minutes=14), None) is None


@pytest.mark.parametrize(("duty", "rest"), [(1.0, 0.0), (0.5, 10.0), (0.25, 30.0), (0.1, 90.0)])
def test_rest_keeps_computing_to_the_duty_cycle(duty, rest):
    policy = DonationPolicy(duty_cycle=duty)
    assert rest_after_unit(policy, 10.0) == pytest.approx(rest)
    assert 10.0 / (10.0 + rest_after_unit(policy, 10.0)) == pytest.approx(duty)
    assert rest_after_unit(policy, 0.0) == 0.0


@pytest.mark.parametrize("duty", [0.05, 0.0, 1.5])
def test_duty_cycle_outside_ten_to_hundred_percent_is_refused(duty):
    with pytest.raises(PolicyError, match="between 10% and 100%"):
        DonationPolicy(duty_cycle=duty)


def test_a_window_allows_its_own_minutes_only():
    evenings = WeeklySchedule(((0, 18 * 60, 22 * 60),))  # Monday 18:00-22:00
    assert evenings.allows(at(0, 18))
    assert evenings.allows(at(0, 21, 59))
    assert not evenings.allows(at(0, 22))
    assert not evenings.allows(at(0, 17, 59))
    assert not evenings.allows(at(1, 19))  # Tuesday


def test_a_window_runs_past_midnight_into_the_next_day():
    late = WeeklySchedule(((4, 22 * 60, 2 * 60),))  # Friday 22:00 to Saturday 02:00
    assert late.allows(at(4, 23, 30))
    assert late.allows(at(5, 1, 59))
    assert not late.allows(at(5, 2))
    assert not late.allows(at(4, 21, 59))
    assert not late.allows(at(3, 23))  # Thursday night is not Friday night


def test_a_sunday_night_window_wraps_into_monday():
    wrap = WeeklySchedule(((6, 23 * 60, 60),))  # Sunday 23:00 to Monday 01:00
    assert wrap.allows(at(6, 23, 30))
    assert wrap.allows(at(0, 0, 30))
    assert not wrap.allows(at(0, 1))
    assert not wrap.allows(at(6, 22, 59))
    assert pause_reason(DonationPolicy(schedule=wrap), at(5, 12), None) == (
        "outside your schedule (next: Sun 23:00)"
    )


def test_outside_the_schedule_names_the_next_window():
    schedule = WeeklySchedule(((0, 18 * 60, 22 * 60), (2, 0, 24 * 60)))
    policy = DonationPolicy(schedule=schedule)
    assert pause_reason(policy, at(0, 10), None) == "outside your schedule (next: Mon 18:00)"
    assert pause_reason(policy, at(0, 23), None) == "outside your schedule (next: Wed 00:00)"
    assert pause_reason(policy, at(3, 0), None) == "outside your schedule (next: Mon 18:00)"
    assert pause_reason(policy, at(2, 23, 59), None) is None  # all of Wednesday
    assert pause_reason(DonationPolicy(schedule=WeeklySchedule(())), at(0, 0), None) == (
        "outside your schedule (it allows no time)"
    )


@pytest.mark.parametrize(
    "window",
    [(7, 0, 60), (-1, 0, 60), (0, 1440, 60), (0, 0, 1441), (0, 600, 600), (0, 1.5, 60)],
)
def test_impossible_windows_are_refused(window):
    with pytest.raises(PolicyError):
        WeeklySchedule((window,))


def test_schedule_and_policy_survive_json():
    schedule = WeeklySchedule(((0, 18 * 60, 22 * 60), (6, 23 * 60, 60)))
    assert WeeklySchedule.from_json(schedule.to_json()) == schedule
    policy = DonationPolicy(
        snooze_until=1.7e9, duty_cycle=0.5, idle_only=True, idle_after_s=300.0, schedule=schedule
    )
    assert DonationPolicy.from_json(policy.to_json()) == policy
    assert DonationPolicy.from_json(DonationPolicy().to_json()) == DonationPolicy()


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"windows": [[0, 1]]}', '{"windows": [[8, 0, 60]]}']
)
def test_broken_schedule_text_is_refused_with_a_policy_error(text):
    with pytest.raises(PolicyError):
        WeeklySchedule.from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"schedule": {"windows": "evenings"}}',
        '{"duty_cycle": "half"}',
        '{"snooze_until": "tomorrow"}',
        '{"speed": 2}',
    ],
)
def test_broken_policy_text_is_refused_with_a_policy_error(text):
    with pytest.raises(PolicyError):
        DonationPolicy.from_json(text)


def test_idle_only_waits_for_the_idle_threshold():
    policy = DonationPolicy(idle_only=True, idle_after_s=120.0)
    now = at(0, 12)
    assert pause_reason(policy, now, 35.0) == "waiting until you are idle (idle 35 s of 120 s)"
    assert pause_reason(policy, now, 119.6) == "waiting until you are idle (idle 119 s of 120 s)"
    assert pause_reason(policy, now, 120.0) is None
    assert pause_reason(DonationPolicy(), now, 0.0) is None  # idle-only off


def test_unknown_idle_time_does_not_hold_computing_back():
    policy = DonationPolicy(idle_only=True)
    assert pause_reason(policy, at(0, 12), None) is None


def test_snooze_comes_before_the_schedule_and_the_schedule_before_idle():
    now = at(0, 10)
    schedule = WeeklySchedule(((0, 18 * 60, 22 * 60),))
    policy = DonationPolicy(snooze_until=now.timestamp() + 600, idle_only=True, schedule=schedule)
    assert pause_reason(policy, now, 1.0) == "snoozed for 10 min"
    after_snooze = now + timedelta(minutes=11)
    assert pause_reason(policy, after_snooze, 1.0) == "outside your schedule (next: Mon 18:00)"
    assert pause_reason(policy, at(0, 19), 1.0) == (
        "waiting until you are idle (idle 1 s of 120 s)"
    )

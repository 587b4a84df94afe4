"""Schedule maths without a database: cron fields, time zones across DST, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.tzcrontab import TzAwareCrontab

from schedules.cron import (
    CronError,
    daily,
    fires_between,
    latest_fire,
    next_fire,
    parse_cron,
    parse_zone,
    weekly,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_fifteen_minutes_on_weekdays() -> None:
    cron = parse_cron("*/15 9-17 * * mon-fri", ZoneInfo("UTC"))
    friday_evening = utc(2026, 3, 6, 17, 50)  # a Friday
    assert next_fire(cron, friday_evening) == utc(2026, 3, 9, 9, 0)  # Monday
    assert next_fire(cron, utc(2026, 3, 9, 9, 0)) == utc(2026, 3, 9, 9, 15)
    assert latest_fire(cron, utc(2026, 3, 9, 9, 14, 59)) == utc(2026, 3, 9, 9, 0)


def test_daily_and_weekly_times_are_cron_expressions() -> None:
    assert daily(time(2, 30)) == "30 2 * * *"
    assert weekly(1, time(6, 5)) == "5 6 * * mon"
    cron = parse_cron(weekly(0, time(6, 5)), NEW_YORK)
    # Sunday 8 March 2026, 06:05 in New York (already summer time, UTC-4).
    assert next_fire(cron, utc(2026, 3, 5)) == utc(2026, 3, 8, 10, 5)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 2 * *", "five fields"),
        ("61 2 * * *", "minute field '61'"),
        ("30 25 * * *", "hour field '25'"),
        ("30 2 * * funday", "day of week field 'funday'"),
        ("0 0 1 * mon", "not both"),
        ("0 0 30 2 *", "never comes"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, words: str) -> None:
    with pytest.raises(CronError, match=words):
        parse_cron(expression, BERLIN)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(CronError, match="not an IANA time zone"):
        parse_zone("Europe/Atlantis")
    assert parse_zone("Europe/Berlin") == BERLIN


def test_spring_forward_in_berlin_runs_a_skipped_time_an_hour_later() -> None:
    """29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day."""
    cron = parse_cron("30 2 * * *", BERLIN)
    assert next_fire(cron, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert next_fire(cron, utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 30, 0, 30)  # 02:30 CEST
    assert next_fire(cron, utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 1, 30)  # 02:30 CET


def test_fall_back_in_berlin_runs_a_repeated_time_once() -> None:
    """25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice."""
    cron = parse_cron("30 2 * * *", BERLIN)
    first = next_fire(cron, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first one
    assert next_fire(cron, first) == utc(2026, 10, 26, 1, 30)  # next day, 02:30 CET


def test_hourly_schedule_keeps_its_order_across_new_yorks_changes() -> None:
    cron = parse_cron("30 * * * *", NEW_YORK)
    spring = list(_take(cron, utc(2026, 3, 8, 5), 4))  # 00:30 EST on 8 March onwards
    assert spring == [utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 30)] + [
        utc(2026, 3, 8, 8, 30)
    ]  # 00:30 EST, 01:30 EST, 03:30 EDT (02:30 skipped lands on it), 04:30 EDT
    assert all(b > a for a, b in zip(spring, spring[1:], strict=False))


def _take(cron, start: datetime, count: int):
    instant = start
    for _ in range(count):
        instant = next_fire(cron, instant)
        yield instant


@pytest.mark.parametrize(
    ("expression", "zone", "last_run"),
    [
        ("30 2 * * *", BERLIN, datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN)),
        ("30 2 * * *", BERLIN, datetime(2026, 10, 24, 2, 30, tzinfo=BERLIN)),
        ("0 2 * * sun", NEW_YORK, datetime(2026, 3, 1, 2, 0, tzinfo=NEW_YORK)),
        ("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK)),
    ],
)
def test_beat_wakes_the_schedule_when_these_maths_say(expression, zone, last_run) -> None:
    """Beat's crontab (django-celery-beat) and these maths agree on DST days, so beat's
    wake-up always finds the fire time it was woken for."""
    minute, hour, _, _, day_of_week = expression.split()
    beat = TzAwareCrontab(minute=minute, hour=hour, day_of_week=day_of_week, tz=zone)
    woken = None
    for step in range(1, 8 * 24 * 60):
        now = last_run + timedelta(minutes=step)
        beat.nowfun = lambda now=now: now
        if beat.is_due(last_run).is_due:
            woken = now.astimezone(UTC)
            break
    assert woken == next_fire(parse_cron(expression, zone), last_run)


def test_catch_up_after_downtime_is_one_run_with_the_others_counted() -> None:
    """Beat down from 01:00 to 05:10 UTC: the hourly schedule runs once, for 05:00, and
    counts 02:00, 03:00 and 04:00 as missed."""
    cron = parse_cron("0 * * * *", ZoneInfo("UTC"))
    last_slot = utc(2026, 5, 1, 1)
    back = utc(2026, 5, 1, 5, 10)
    slot = latest_fire(cron, back)
    assert slot == utc(2026, 5, 1, 5)
    assert fires_between(cron, last_slot, slot, limit=1000) == 3


def test_missed_count_stops_at_its_limit() -> None:
    cron = parse_cron("* * * * *", ZoneInfo("UTC"))
    assert fires_between(cron, utc(2026, 1, 1), utc(2026, 2, 1), limit=1000) == 1000

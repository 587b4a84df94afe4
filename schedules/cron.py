"""When a schedule fires: cron expressions read in a time zone. No Django here.

Five fields, `minute hour day-of-month month day-of-week`, each parsed by Celery's own
`crontab_parser`, so beat (which wakes the schedule) and these maths read an expression
alike. Times are wall-clock times in the schedule's zone:

- a time the clocks skip (02:30 on the morning summer time starts in Berlin) fires at
  the same instant one hour on, as 03:30 summer time;
- a time the clocks pass twice (02:30 on the morning summer time ends) fires once, at
  its first occurrence.

Celery beat's crontab reads both cases the same way (tests/schedules/test_cron.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import ParseException, crontab_parser

# 29 February may be eight years away (2096 → 2104); no expression fires less often.
HORIZON_DAYS = 366 * 9
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CronError(ValueError):
    """An expression or zone bulkops cannot schedule, in words for the form."""


@dataclass(frozen=True)
class Cron:
    """A parsed expression in its zone."""

    expression: str
    zone: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday, as in crontab(5)

    def fires_on(self, day: date) -> bool:
        return (
            day.month in self.months
            and day.day in self.days
            and (day.isoweekday() % 7) in self.weekdays
        )

    @property
    def fields(self) -> list[str]:
        return self.expression.split()


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone by name (Europe/Berlin, UTC); CronError for anything else."""
    if name not in _zone_names():
        raise CronError(f"{name!r} is not an IANA time zone name, e.g. Europe/Berlin or UTC.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"{name!r} is not an IANA time zone name.") from None


def parse_cron(expression: str, zone: ZoneInfo) -> Cron:
    """Parse `minute hour day-of-month month day-of-week`; CronError says what is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            "A cron expression has five fields: minute hour day-of-month month day-of-week "
            f"(e.g. 30 2 * * *); this one has {len(fields)}."
        )
    names = ("minute", "hour", "day of month", "month", "day of week")
    parsers = (
        crontab_parser(60),
        crontab_parser(24),
        crontab_parser(31, 1),
        crontab_parser(12, 1),
        crontab_parser(7),
    )
    values = []
    for name, parser, field in zip(names, parsers, fields, strict=True):
        try:
            values.append(parser.parse(field.lower()))
        except (ParseException, ValueError, KeyError) as error:
            raise CronError(f"The {name} field {field!r} is not valid: {error}.") from None
    if fields[2] != "*" and fields[4] != "*":
        # crontab(5) fires when either matches, Celery's crontab when both do: refuse
        # rather than fire on days the operator did not mean.
        raise CronError("Give a day of month or a day of week, not both.")
    minutes, hours, days, months, weekdays = values
    cron = Cron(
        " ".join(fields),
        zone,
        tuple(sorted(minutes)),
        tuple(sorted(hours)),
        frozenset(days),
        frozenset(months),
        frozenset(weekdays),
    )
    if next_fire(cron, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise CronError(f"{expression!r} names a day that never comes (e.g. 30 February).")
    return cron


def daily(at: time) -> str:
    return f"{at.minute} {at.hour} * * *"


def weekly(weekday: int, at: time) -> str:
    """`weekday` 0 is Sunday."""
    return f"{at.minute} {at.hour} * * {WEEKDAYS[weekday]}"


def _instants(cron: Cron, day: date, *, reverse: bool) -> Iterator[datetime]:
    hours = reversed(cron.hours) if reverse else cron.hours
    for hour in hours:
        minutes = reversed(cron.minutes) if reverse else cron.minutes
        for minute in minutes:
            # fold=0: a skipped time reads with the offset before the change (one hour
            # on), a repeated one as its first occurrence.
            local = datetime.combine(day, time(hour, minute), tzinfo=cron.zone)
            yield local.astimezone(UTC)


def fire_times(cron: Cron, start: datetime, *, reverse: bool = False) -> Iterator[datetime]:
    """Fire times after `start` in order (or at or before it, latest first, with
    `reverse`), each instant once, within HORIZON_DAYS."""
    first = start.astimezone(cron.zone).date()
    step = timedelta(days=-1 if reverse else 1)
    day = first - step  # the day before: a UTC instant may fall on either local date
    previous = None
    for _ in range(HORIZON_DAYS):
        if cron.fires_on(day):
            for instant in _instants(cron, day, reverse=reverse):
                wanted = instant <= start if reverse else instant > start
                if wanted and instant != previous:
                    previous = instant
                    yield instant
        day += step


def next_fire(cron: Cron, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`."""
    return next(fire_times(cron, after), None)


def latest_fire(cron: Cron, at: datetime) -> datetime | None:
    """The last fire time at or before `at`."""
    return next(fire_times(cron, at, reverse=True), None)


def fires_between(cron: Cron, after: datetime, before: datetime, *, limit: int) -> int:
    """How many fire times fall strictly between the two instants, counting at most
    `limit` (a minutely schedule after a month of downtime is not walked in full)."""
    count = 0
    for instant in fire_times(cron, after):
        if instant >= before or count >= limit:
            break
        count += 1
    return count

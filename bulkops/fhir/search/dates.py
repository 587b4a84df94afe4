"""Date search (http://hl7.org/fhir/R4/search.html#date): every date is a range.

A value stands for the range its precision implies: `2024` is all of 2024, `2024-03-01`
that day, `2024-03-01T10:00:00Z` that second. Resource values are ranges too: a
date/dateTime/instant by its precision, a Period from its start to its end (open when
one is missing), a Timing from its first event or bound to its last (its schedule is
ignored, as R4 says). Ranges here are half-open, [start, end).

Values without a time zone are read as UTC (R4 leaves them to the server's zone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bulkops.fhir.search.prefixes import AP, APPROXIMATELY, EB, EQ, GE, GT, LE, LT, NE, SA

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime  # exclusive

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: Interval) -> bool:
        return other.start < self.end and self.start < other.end


def zone_plus_restored(text: str) -> str:
    """`text` with a time zone's `+` put back where query-string decoding made it a
    space (`2024-01-01T00:00:00 01:00`)."""
    return re.sub(r" (\d{2}:\d{2})$", r"+\1", text.strip())


def date_interval(text: str) -> Interval | None:
    """The range a FHIR date, dateTime or instant (or a search value) stands for; None
    when `text` is not one."""
    match = _DATE.match(text)
    if match is None:
        return None
    fields = ("year", "month", "day", "hour", "minute", "second")
    number = {name: int(match[name] or (1 if name in ("month", "day") else 0)) for name in fields}
    fraction = match["fraction"] or ""
    try:
        start = datetime(
            number["year"],
            number["month"],
            number["day"],
            number["hour"],
            number["minute"],
            min(number["second"], 59),  # a leap second is the second before it
            int(fraction[:6].ljust(6, "0")),
            tzinfo=_zone(match["zone"]),
        ).astimezone(UTC)
    except (ValueError, OverflowError):  # Feb 30, month 13, year 0, off the calendar
        return None
    return Interval(start, _end(start, match, fraction))


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _end(start: datetime, match: re.Match[str], fraction: str) -> datetime:
    """The exclusive end of the range `match`'s precision gives a value starting at
    `start`."""
    try:
        if match["month"] is None:
            return start.replace(year=start.year + 1)
        if match["day"] is None:
            rolled = start.month == 12
            return start.replace(year=start.year + rolled, month=1 if rolled else start.month + 1)
        if match["hour"] is None:
            return start + timedelta(days=1)
        if match["second"] is None:
            return start + timedelta(minutes=1)
        return start + timedelta(microseconds=10 ** (6 - min(len(fraction), 6)))
    except (ValueError, OverflowError):  # the range runs past year 9999
        return LATEST


def target_interval(value: Any) -> Interval | None:
    """The range a resource's value covers: a date/dateTime/instant, Period or Timing."""
    if isinstance(value, str):
        return date_interval(value)
    if not isinstance(value, dict):
        return None
    if "start" in value or "end" in value:
        return _period(value)
    bounds = [date_interval(event) for event in value.get("event") or [] if isinstance(event, str)]
    repeat = value.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        bounds.append(_period(repeat["boundsPeriod"]))
    found = [interval for interval in bounds if interval is not None]
    if not found:
        return None
    return Interval(min(i.start for i in found), max(i.end for i in found))


def _period(period: dict[str, Any]) -> Interval | None:
    start = date_interval(period["start"]) if isinstance(period.get("start"), str) else None
    end = date_interval(period["end"]) if isinstance(period.get("end"), str) else None
    if start is None and end is None:
        return None
    return Interval(start.start if start else EARLIEST, end.end if end else LATEST)


@dataclass(frozen=True)
class DateValue:
    """A date search value: a prefix and the range the date stands for."""

    prefix: str
    interval: Interval
    now: datetime  # `ap` widens by a share of the distance to now

    def matches(self, value: Any) -> bool:
        target = target_interval(value)
        return target is not None and compare_ranges(self.prefix, self.widened(), target)

    def widened(self) -> Interval:
        if self.prefix != AP:
            return self.interval
        margin = abs(self.now - self.interval.start) * APPROXIMATELY
        return Interval(shifted(self.interval.start, -margin), shifted(self.interval.end, margin))


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta`, held at the ends of time instead of overflowing."""
    try:
        return moment + delta
    except OverflowError:
        return EARLIEST if delta < timedelta(0) else LATEST


def compare_ranges(prefix: str, search: Interval, target: Interval) -> bool:
    """R4's prefix rules for ranges (search.html#prefix), `search` against `target`."""
    above = target.end > search.end  # the range above the search value meets the target
    below = target.start < search.start
    if prefix == EQ:
        return search.contains(target)
    if prefix == NE:
        return not search.contains(target)
    if prefix == GT:
        return above
    if prefix == LT:
        return below
    if prefix == GE:
        return above or search.contains(target)
    if prefix == LE:
        return below or search.contains(target)
    if prefix == SA:
        return target.start >= search.end
    if prefix == EB:
        return target.end <= search.start
    return search.overlaps(target)  # ap, on the widened range

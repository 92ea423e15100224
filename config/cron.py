"""A CronJob `schedule` checked as the Kubernetes API server checks it on create.

The API server parses it with robfig/cron v3's `ParseStandard` and refuses any schedule that
mentions a time zone ("cannot use TZ or CRON_TZ in schedule, use timeZone field instead":
kubernetes/kubernetes pkg/apis/batch/validation/validation.go `validateCronJobSpec`,
`validateScheduleFormat`). `ParseStandard` takes five fields or a descriptor
(robfig/cron@v3.0.1:parser.go `standardParser`, `getRange`, `parseDescriptor`; bounds in spec.go):
minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-6 or sun-sat;
each field a comma list of `*` or `?`, `n`, `a-b`, each optionally `/step`.
Beyond what the API server checks, a schedule that can never fire (the 31st of February) is
refused too: it is accepted on create, and the job then never runs.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple


class _Bounds(NamedTuple):
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is low + i


FIELDS: Final = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day of month", 1, 31),
    _Bounds(
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    _Bounds("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
DESCRIPTORS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
# Go's time.ParseDuration, which `@every` takes (at least one number-and-unit pair).
_GO_DURATION = re.compile(r"^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$")
# strconv.Atoi: an optional sign and decimal digits.
_ATOI = re.compile(r"^[+-]?[0-9]+$")


class CronError(ValueError):
    """Why the API server would refuse the schedule, in words."""


def _number(text: str, bounds: _Bounds) -> int:
    if bounds.names and text.lower() in bounds.names:
        return bounds.low + bounds.names.index(text.lower())
    if not _ATOI.fullmatch(text):
        raise CronError(f"{text!r} is not a number in the {bounds.name} field")
    value = int(text)
    if value < 0:
        raise CronError(f"negative number {value} in the {bounds.name} field")
    return value


def _range(expr: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """The values `expr` selects, and whether it is a star (`*` or `?` without a step over 1,
    robfig's `starBit`, which decides how day of month and day of week combine)."""
    pieces = expr.split("/")
    if len(pieces) > 2:
        raise CronError(f"too many '/' in {expr!r} ({bounds.name})")
    low_high = pieces[0].split("-")
    star = low_high[0] in ("*", "?")
    if star:
        start, end = bounds.low, bounds.high
    else:
        if len(low_high) > 2:
            raise CronError(f"too many '-' in {expr!r} ({bounds.name})")
        start = _number(low_high[0], bounds)
        end = _number(low_high[1], bounds) if len(low_high) == 2 else start
    step = 1
    if len(pieces) == 2:
        if not _ATOI.fullmatch(pieces[1]) or int(pieces[1]) < 0:
            raise CronError(f"step {pieces[1]!r} in {expr!r} is not a number ({bounds.name})")
        if len(low_high) == 1:
            end = bounds.high  # 'n/step' means 'n-max/step'
        step = int(pieces[1])
        if step == 0:
            raise CronError(f"step of {expr!r} must be a positive number ({bounds.name})")
    if start < bounds.low or end > bounds.high:
        raise CronError(
            f"{expr!r} is out of range for the {bounds.name} ({bounds.low}-{bounds.high})"
        )
    if start > end:
        raise CronError(f"{expr!r} starts after it ends ({bounds.name})")
    return set(range(start, end + 1, step)), star and step == 1


# The longest each month gets; February's 29th comes in leap years, within robfig's five-year
# search (spec.go `Next`, `yearLimit`), so it is a date that comes.
_MONTH_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _never_fires(fields: list[str], days: tuple[set[int], bool], *, weekday_star: bool) -> None:
    """robfig/cron@v3.0.1 spec.go `dayMatches`: when either day field is a star, a day must
    match both, else either. With day of week a star, a day of month no chosen month has
    (the 31st of February) never matches: the API server accepts the schedule, and the job
    never runs."""
    day_values, day_star = days
    if day_star or not weekday_star:
        return  # any day of month, or day of week alone picks days every month has
    months = _field(fields[3], FIELDS[3])[0]
    if any(day <= _MONTH_DAYS[month - 1] for month in months for day in day_values):
        return
    raise CronError(
        f"never fires: day {fields[2]!r} of month {fields[3]!r} is a date the calendar never "
        "has (Kubernetes accepts the schedule, but the job would never run); pick a day every "
        "chosen month has, e.g. 28"
    )


def _field(text: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """robfig's `getField`: the union of the comma list's ranges (empty pieces are skipped)."""
    values: set[int] = set()
    star = False
    for expr in (piece for piece in text.split(",") if piece):
        selected, is_star = _range(expr, bounds)
        values |= selected
        star = star or is_star
    return values, star


def check_schedule(schedule: str) -> None:
    """Raise `CronError` saying why Kubernetes would refuse `schedule` on create."""
    if not schedule.strip():
        raise CronError("is empty")
    if "TZ" in schedule:
        raise CronError(
            "must not name a time zone (TZ= or CRON_TZ=): Kubernetes refuses it in a new "
            "CronJob; the schedule runs in the cluster's time zone, UTC on Talos"
        )
    if schedule.startswith("@"):
        if schedule in DESCRIPTORS:
            return
        every = schedule.removeprefix("@every ")
        if every != schedule and _GO_DURATION.fullmatch(every):
            return
        raise CronError(
            f"{schedule!r} is no descriptor Kubernetes knows: {', '.join(sorted(DESCRIPTORS))} "
            "or '@every <duration>' (e.g. '@every 6h')"
        )
    fields = schedule.split()
    if len(fields) != len(FIELDS):
        raise CronError(
            f"has {len(fields)} fields; it needs five: minute hour day-of-month month day-of-week"
        )
    parsed = [_field(text, bounds) for text, bounds in zip(fields, FIELDS, strict=True)]
    _never_fires(fields, parsed[2], weekday_star=parsed[4][1])

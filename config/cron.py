"""A CronJob `schedule` checked as the Kubernetes API server checks it on create.

The API server parses it with robfig/cron v3's `ParseStandard` and refuses any schedule that
mentions a time zone ("cannot use TZ or CRON_TZ in schedule, use timeZone field instead":
kubernetes/kubernetes pkg/apis/batch/validation/validation.go `validateCronJobSpec`,
`validateScheduleFormat`). `ParseStandard` takes five fields or a descriptor
(robfig/cron@v3.0.1:parser.go `standardParser`, `getRange`, `parseDescriptor`; bounds in spec.go):
minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-6 or sun-sat;
each field a comma list of `*` or `?`, `n`, `a-b`, each optionally `/step`.
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


def _check_range(expr: str, bounds: _Bounds) -> None:
    pieces = expr.split("/")
    if len(pieces) > 2:
        raise CronError(f"too many '/' in {expr!r} ({bounds.name})")
    low_high = pieces[0].split("-")
    if low_high[0] in ("*", "?"):
        start, end = bounds.low, bounds.high
    else:
        if len(low_high) > 2:
            raise CronError(f"too many '-' in {expr!r} ({bounds.name})")
        start = _number(low_high[0], bounds)
        end = _number(low_high[1], bounds) if len(low_high) == 2 else start
    if len(pieces) == 2:
        if not _ATOI.fullmatch(pieces[1]) or int(pieces[1]) < 0:
            raise CronError(f"step {pieces[1]!r} in {expr!r} is not a number ({bounds.name})")
        if len(low_high) == 1:
            end = bounds.high  # 'n/step' means 'n-max/step'
        if int(pieces[1]) == 0:
            raise CronError(f"step of {expr!r} must be a positive number ({bounds.name})")
    if start < bounds.low or end > bounds.high:
        raise CronError(
            f"{expr!r} is out of range for the {bounds.name} ({bounds.low}-{bounds.high})"
        )
    if start > end:
        raise CronError(f"{expr!r} starts after it ends ({bounds.name})")


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
    for text, bounds in zip(fields, FIELDS, strict=True):
        for expr in (piece for piece in text.split(",") if piece):
            _check_range(expr, bounds)

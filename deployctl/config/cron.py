"""Cron expressions for `[jobs.NAME] schedule`: the five standard fields, checked here and
expanded into the explicit value sets the host's scheduler compares against (plan/operate/jobs.py).
Pure (config reads it to validate `schedule`; plan/operate/jobs.py writes the sets for the host).

Supported, as in Vixie cron: `*`, a number, a range `a-b`, a step `*/n` or `a-b/n` or `a/n`,
and comma-separated lists of those; times in UTC. Not supported (refused by name, never
silently misread): names (`mon`, `jan`), `?`, `L`, `W`, `#`, `@hourly`-style macros and a
seconds field. When both day-of-month and day-of-week are restricted, a day matching
either runs the job (Vixie cron's rule).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# (name, lowest, highest) of each field, in order
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is read as 0)
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, when: dt.datetime) -> bool:
        """Whether the job is due in `when`'s minute (a naive or UTC datetime)."""
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day = when.day in self.days
        weekday = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day or weekday
        return day and weekday

    def table_line(self) -> str:
        """The sets as the scheduler's shell reads them: `|`-separated fields, each a
        comma-wrapped list (`,0,15,30,45,`), then `or` / `and` for the two day fields."""
        sets = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        fields = ["," + ",".join(str(v) for v in sorted(s)) + "," for s in sets]
        rule = "or" if self.days_restricted and self.weekdays_restricted else "and"
        return "|".join([*fields, rule])


def parse_cron(expression: str) -> Cron:
    """The expression's sets; CronError says which field is wrong and why."""
    text = expression.strip()
    if text.startswith("@"):
        raise CronError(f"{expression!r}: macros like {text.split()[0]!r} are not supported; write the five "
                        "fields (e.g. \"0 * * * *\" for hourly)")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{expression!r} has {len(parts)} field(s); a schedule has five: minute hour day-of-month "
                        "month day-of-week (e.g. \"*/15 * * * *\")")
    sets = [_field(part, *spec) for part, spec in zip(parts, FIELDS)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return Cron(text, sets[0], sets[1], sets[2], sets[3], weekdays,
                days_restricted=parts[2] != "*", weekdays_restricted=parts[4] != "*")


# crontab(5)'s macros, for `[accessories.NAME.backup] schedule` (which has always taken them);
# `[jobs.NAME] schedule` still refuses them (parse_cron), as docs/jobs.md says.
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def parse_schedule(expression: str) -> Cron:
    """parse_cron, with crontab's macros (@daily, ...) read as their five fields."""
    text = expression.strip()
    return parse_cron(MACROS.get(text, text))


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _item(item, name, low, high)
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int) -> set[int]:
    where = f"the {name} field {item!r}"
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{where}: the step after '/' must be a positive number")
        step = int(step_text)
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = _number(first, where, low, high), _number(last, where, low, high)
        if start > end:
            raise CronError(f"{where}: the range runs backwards ({start} > {end})")
    else:
        start = _number(base, where, low, high)
        end = high if slash else start  # `5/15`: from 5 to the end, every 15
    return set(range(start, end + 1, step))


def _number(text: str, where: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise CronError(f"{where}: {text!r} is not a number (names like 'mon' or 'jan', and ?, L, W, # "
                        "are not supported)")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{where}: {value} is out of range ({low}-{high})")
    return value

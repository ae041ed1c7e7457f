"""Shared by the usage API, the admin pages and `usage_report`: periods from input, CSV output.

Usage is counted per UTC hour (UsageHourly), so a period is a half-open range of whole UTC
hours `[start, end)`. A date means whole UTC days: as `from` it starts at that day's midnight,
as `to` it includes the whole day. A datetime `to` is exclusive. A datetime that is not on the
hour is refused rather than rounded: rounding would silently count calls outside the period.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TextIO

from django.utils import timezone

from .models import ROLLUP_SUMS

GROUP_BYS = ("day", "model", "factory", "type", "token")
DEFAULT_DAYS = 30
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
# Cells a spreadsheet would run as a formula (model names are tenant input).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, UTC, on the hour
    end: datetime  # exclusive, UTC, on the hour


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _parse_moment(name: str, raw: str) -> date | datetime:
    moment = _parse_iso(name, raw)
    start = moment if isinstance(moment, datetime) else _midnight(moment)
    if not EARLIEST <= start < LATEST:
        raise ValueError(_out_of_range(name, raw))
    return moment


def _out_of_range(name: str, raw: str) -> str:
    first, last = EARLIEST.date(), (LATEST - timedelta(days=1)).date()
    return f"{name}: {raw!r} is out of range; give a moment from {first} to {last}"


def _parse_iso(name: str, raw: str) -> date | datetime:
    value = raw.strip()
    if len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    candidates = [value]
    # An unencoded "+02:00" in a query string arrives as " 02:00".
    if " " in value:
        head, _, tail = value.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            moment = datetime.fromisoformat(candidate)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except ValueError:
            continue
        except OverflowError:  # an offset pushing year 1 or 9999 past the calendar
            raise ValueError(_out_of_range(name, raw)) from None
        if moment.minute or moment.second or moment.microsecond:
            raise ValueError(
                f"{name}: {raw!r} is not on the hour; usage is counted per UTC hour, so give a "
                "date (YYYY-MM-DD) or a datetime on the hour (YYYY-MM-DDTHH:00:00Z)"
            )
        return moment
    raise ValueError(
        f"{name}: {raw!r} is neither a date (YYYY-MM-DD) nor an ISO datetime (YYYY-MM-DDTHH:00:00Z)"
    )


def parse_period(
    start: str | None, end: str | None, *, now: datetime | None = None, days: int = DEFAULT_DAYS
) -> Period:
    """The period `[from, to)` of the input; by default the last `days` UTC days with today.

    Raises ValueError with a message fit for the caller.
    """
    today = (now or timezone.now()).astimezone(UTC).date()
    if end:
        moment = _parse_moment("to", end)
        stop = moment if isinstance(moment, datetime) else _midnight(moment) + timedelta(days=1)
    else:
        stop = _midnight(today) + timedelta(days=1)
    if start:
        moment = _parse_moment("from", start)
        begin = moment if isinstance(moment, datetime) else _midnight(moment)
    else:
        begin = max(stop - timedelta(days=days), EARLIEST)
    if begin >= stop:
        raise ValueError(
            f"from ({begin:%Y-%m-%dT%H:%M:%SZ}) must be before to ({stop:%Y-%m-%dT%H:%M:%SZ})"
        )
    return Period(start=begin, end=stop)


def parse_group_by(value: str | None) -> str:
    group_by = (value or "day").strip().lower()
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by: {value!r} is not one of {', '.join(GROUP_BYS)}")
    return group_by


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(value: Decimal | None) -> str:
    """A cost with the ledger's 8 decimals, never in exponent notation ("0E-8")."""
    return f"{Decimal(value or 0):.8f}"


def _safe_cell(value) -> str:
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


def write_csv(stream: TextIO, *, group_by: str, rows: Iterable) -> None:
    """A header row, then one row per group (UsageRow objects); no totals line."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow((group_by, *ROLLUP_SUMS))
    for row in rows:
        values = [getattr(row, column) for column in ROLLUP_SUMS if column != "cost"]
        writer.writerow((_safe_cell(row.key), *values, money(row.cost)))

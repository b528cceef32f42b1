"""IMAP dates (RFC 3501 9 ``date``, ``date-time``): parsing and formatting."""

from __future__ import annotations

import calendar
import datetime
import re

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): i + 1 for i, name in enumerate(MONTHS)}

_DATE = re.compile(r'^("?)([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\1$')
_DATE_TIME = re.compile(
    r'^"?([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"?$'
)


def parse_imap_date(text: str) -> datetime.date:
    """``1-Feb-1994`` (optionally quoted) to a date; ValueError when malformed (RFC 3501 9
    ``date``, used by SEARCH BEFORE/ON/SINCE and SENT*)."""
    m = _DATE.match(text.strip())
    if m is None:
        raise ValueError(f"bad IMAP date {text!r}")
    month = _MONTH_NUMBER.get(m.group(3).lower())
    if month is None:
        raise ValueError(f"bad month in {text!r}")
    return datetime.date(int(m.group(4)), month, int(m.group(2)))


def parse_imap_datetime(text: str) -> float:
    """``"17-Jul-1996 02:44:25 -0700"`` (APPEND date-time) to UTC epoch seconds; ValueError
    when malformed."""
    m = _DATE_TIME.match(text.strip())
    if m is None:
        raise ValueError(f"bad IMAP date-time {text!r}")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    month = _MONTH_NUMBER.get(mon.lower())
    if month is None:
        raise ValueError(f"bad month in {text!r}")
    moment = datetime.datetime(int(year), month, int(day), int(hh), int(mm), int(ss))
    if int(zm) > 59:
        raise ValueError(f"bad zone in {text!r}")
    offset = (int(zh) * 60 + int(zm)) * 60 * (1 if sign == "+" else -1)
    return float(calendar.timegm(moment.timetuple()) - offset)


def format_imap_datetime(epoch: float, offset_seconds: int = 0) -> str:
    """UTC epoch seconds as ``17-Jul-1996 02:44:25 -0700`` (INTERNALDATE), in the given zone."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(epoch) + offset_seconds)
    sign = "-" if offset_seconds < 0 else "+"
    minutes = abs(offset_seconds) // 60
    return (
        f"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def date_of_epoch(epoch: float, offset_seconds: int = 0) -> datetime.date:
    """The calendar date of an instant in a zone (BEFORE/ON/SINCE compare INTERNALDATE's date)."""
    return (
        datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(epoch) + offset_seconds)
    ).date()

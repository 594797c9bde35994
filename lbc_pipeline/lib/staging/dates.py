"""Reading the survey dates that data entry delivers in other forms than YYYY-MM-DD.

Staging types a date column by one format only (`clean.DATE_FORMAT`, YYYY-MM-DD); the raw
reader (`lib/raw/reading.py`, `normalise_dates`) rewrites the other forms below to it first
and records one read note per form found. The rules, chosen so that no value is misread:

- A value already shaped YYYY-MM-DD is left as it is (even when it is no real date, such
  as 2019-11-31: staging quarantines it as unparseable).
- Year first, then month, then day: the only order read. The forms read are
  `Y年M月D日` (also with 号 for 日, or without it, spaces allowed between the parts),
  `Y.M.D`, `Y/M/D`, `Y-M-D` with one-digit month or day, each with or without leading
  zeros, and `YYYYMMDD` (eight digits). The year has four digits. A time of day after a
  Y-M-D, Y/M/D or Y.M.D date (`2021/4/4 0:00`, `2021-04-04 10:30:00`, what a spreadsheet
  writes for a date cell exported to csv) is dropped: the day is what counts.
- Excel serial numbers: a number of days (5 digits, a fraction = a time of day, dropped),
  counted in the 1900 date system (day 1 = 1900-01-01, with Excel's phantom 1900-02-29, so
  1899-12-30 + n for every serial read here) or, when the workbook says so (`date1904`),
  the 1904 system (1904-01-01 + n). A csv cannot say which, so a csv's serials are read in
  the 1900 system. Only serials that fall in 1990-01-01..2099-12-31 are read: a smaller or
  larger number is not taken for a date.
- Never read, so that an ambiguous value is not silently misread (the value stays as
  delivered and staging quarantines it as unparseable, with its column): day or month first
  (`04/05/2021`: 4 May or 5 April?), a two-digit year (`21.4.4`), six digits (`210404`),
  month names, Chinese numerals (`二〇二一年四月四日`), anything whose parts are no real
  calendar day (`2021年2月30日`, `2021/13/4`: month and day are never swapped), and
  special codes (-9, -8, -7: staging reads them as such).

Full-width digits (`２０２１年４月４日`) reach this module already NFKC-normalised by the reader.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
# (form as a note names it, pattern); groups: year, month, day, time of day (if any).
TEXT_FORMS: tuple[tuple[str, re.Pattern], ...] = (
    ("Y年M月D日", re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")),
    ("Y-M-D", re.compile(rf"^(\d{{4}})-(\d{{1,2}})-(\d{{1,2}})({_TIME})?$")),
    ("Y/M/D", re.compile(rf"^(\d{{4}})/(\d{{1,2}})/(\d{{1,2}})({_TIME})?$")),
    ("Y.M.D", re.compile(rf"^(\d{{4}})\.(\d{{1,2}})\.(\d{{1,2}})({_TIME})?$")),
    ("YYYYMMDD", re.compile(r"^(\d{4})(\d{2})(\d{2})$")),
)
EXCEL_SERIAL = re.compile(r"^(\d{5})(?:\.\d+)?$")
# Serial numbers are read only when they fall in this window (see the module docstring).
SERIAL_WINDOW = (dt.date(1990, 1, 1), dt.date(2099, 12, 31))
EIGHT_DIGIT_YEARS = (1900, 2099)
_EPOCH = {False: dt.date(1899, 12, 30), True: dt.date(1904, 1, 1)}


@dataclass(frozen=True)
class ReadDate:
    """One delivered value read as a date: the ISO text and the form it was delivered in."""

    iso: str
    form: str


def serial_form(date1904: bool) -> str:
    return f"Excel serial number ({1904 if date1904 else 1900} date system)"


def read_date(text: str, date1904: bool = False) -> ReadDate | None:
    """`text` (stripped) in one of the forms of the module docstring, read as a date; None for
    a value left as it is (already YYYY-MM-DD, or not read: see the docstring)."""
    if ISO_DATE.match(text):
        return None
    for form, pattern in TEXT_FORMS:
        match = pattern.match(text)
        if not match:
            continue
        year, month, day = (int(g) for g in match.groups()[:3])
        if form == "YYYYMMDD" and not EIGHT_DIGIT_YEARS[0] <= year <= EIGHT_DIGIT_YEARS[1]:
            return None
        try:
            date = dt.date(year, month, day)
        except ValueError:
            return None  # no such day: month and day are never swapped to make one
        timed = len(match.groups()) > 3 and match.group(4)
        return ReadDate(date.isoformat(), form + (" with a time of day" if timed else ""))
    match = EXCEL_SERIAL.match(text)
    if match:
        date = _EPOCH[date1904] + dt.timedelta(days=int(match.group(1)))
        if SERIAL_WINDOW[0] <= date <= SERIAL_WINDOW[1]:
            return ReadDate(date.isoformat(), serial_form(date1904))
    return None

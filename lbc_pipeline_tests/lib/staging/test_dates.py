"""Survey dates in the forms a Chinese school export or a spreadsheet delivers them.

Each rule of `lib/staging/dates.py` has a case that is read and a case that must not be.
"""

import datetime as dt

import pytest

from lbc_pipeline.lib.staging.dates import read_date


@pytest.mark.parametrize(
    ("text", "iso", "form"),
    [
        ("2021年4月4日", "2021-04-04", "Y年M月D日"),
        ("2021年04月04日", "2021-04-04", "Y年M月D日"),
        ("2021 年 4 月 4 日", "2021-04-04", "Y年M月D日"),
        ("2021年4月4号", "2021-04-04", "Y年M月D日"),
        ("2021年4月4", "2021-04-04", "Y年M月D日"),
        ("2021.4.4", "2021-04-04", "Y.M.D"),
        ("2021.04.04", "2021-04-04", "Y.M.D"),
        ("2021/4/4", "2021-04-04", "Y/M/D"),
        ("2021/04/04", "2021-04-04", "Y/M/D"),
        ("2021/4/4 0:00", "2021-04-04", "Y/M/D with a time of day"),  # a date cell exported to csv
        ("2021-4-4", "2021-04-04", "Y-M-D"),
        ("2021-04-04 00:00:00", "2021-04-04", "Y-M-D with a time of day"),
        ("2021-04-04T10:30", "2021-04-04", "Y-M-D with a time of day"),
        ("20210404", "2021-04-04", "YYYYMMDD"),
        ("44256", "2021-03-01", "Excel serial number (1900 date system)"),
        ("44256.0", "2021-03-01", "Excel serial number (1900 date system)"),  # a float export
        ("44256.75", "2021-03-01", "Excel serial number (1900 date system)"),  # the time of day dropped
        ("43809", "2019-12-10", "Excel serial number (1900 date system)"),
    ],
)
def test_forms_read(text, iso, form):
    found = read_date(text)
    assert (found.iso, found.form) == (iso, form)


def test_serials_in_the_1904_system():
    found = read_date("42347", date1904=True)  # 1904-01-01 + 42347 days
    assert (found.iso, found.form) == ("2019-12-10", "Excel serial number (1904 date system)")
    assert dt.date(1904, 1, 1) + dt.timedelta(days=42347) == dt.date(2019, 12, 10)
    assert read_date("42347").iso == "2015-12-09"  # the same number in the 1900 system


@pytest.mark.parametrize(
    "text",
    [
        "2019-12-10",  # already YYYY-MM-DD: left as it is
        "2019-11-31",  # YYYY-MM-DD but no such day: left for staging to quarantine
        "04/05/2021",  # day or month first: 4 May or 5 April?
        "4/5/2021",
        "13/04/2021",  # day first, even where the day gives it away: never guessed
        "21.4.4",  # two-digit year
        "21/04/04",
        "210404",  # six digits
        "2021年2月30日",  # no such day
        "2021/13/4",  # month 13: never swapped with the day
        "2021/4/13/1",
        "20211404",  # YYYYMMDD with month 14
        "18990404",  # eight digits outside 1900-2099
        "二〇二一年四月四日",  # Chinese numerals
        "April 4, 2021",
        "2021",  # a year alone (or serial 2021 = 1905): not a date
        "12345",  # a serial before 1990
        "80000",  # a serial after 2099
        "-9", "-8", "-7",  # special codes: staging reads them
        "44256-1",
        "",
    ],
)
def test_values_not_read(text):
    assert read_date(text) is None

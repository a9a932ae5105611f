"""The Da Nang registration: `TK,Ho va Ten,CMND,ngaysinh` with `,` or `;`."""

from __future__ import annotations

import datetime as dt

import pytest

from parsers import registration as form
from parsers.arguments import registration
from parsers.result import ArgumentError, ErrorCode
from tests.support.parser_cases import BAD_REGISTRATIONS, REGISTRATIONS

TODAY = dt.date(2024, 6, 1)
VIETNAM = dt.timezone(dt.timedelta(hours=7))  # Da Nang keeps UTC+7 all year


@pytest.mark.parametrize("text, expected", REGISTRATIONS)
def test_registration(text: str, expected: tuple[str, str, str]) -> None:
    name, id_number, born = expected
    assert registration(text, TODAY) == {"full_name": name, "id_number": id_number,
                                         "birth_date": born}


@pytest.mark.parametrize("text, why", BAD_REGISTRATIONS)
def test_bad_registration(text: str, why: str) -> None:
    with pytest.raises(ArgumentError) as error:
        registration(text, TODAY)
    assert error.value.code == ErrorCode.SYNTAX_ERROR


NAMES = [
    ("Nguyen Van An", "Nguyen Van An"),
    ("Nguyễn Văn Đức", "Nguyen Van Duc"),
    ("ĐẶNG THỊ ÁNH", "DANG THI ANH"),
    ("Phạm   Hoàng\tPhúc", "Pham Hoang Phuc"),
    ("Ｎｇｕｙｅｎ", "Nguyen"),
    ("Ðặng", "Dang"),  # Icelandic eth, which looks like Đ
    ("Nguyen2", None),
    ("", None),
    ("   ", None),
    ("Nguyen-Van", None),
]


@pytest.mark.parametrize("field, name", NAMES)
def test_full_name(field: str, name: str | None) -> None:
    assert form.full_name(field) == name


BIRTH_DATES = [
    ("01.02.1990", dt.date(1990, 2, 1)),
    ("1/2/1990", dt.date(1990, 2, 1)),
    ("01/02.1990", dt.date(1990, 2, 1)),
    ("01.01.1900", dt.date(1900, 1, 1)),
    ("01.06.2024", TODAY),
    ("02.06.2024", None),  # tomorrow
    ("31.12.1899", None),
    ("00.01.1990", None),
    ("001.01.1990", None),
]


@pytest.mark.parametrize("field, born", BIRTH_DATES)
def test_birth_date(field: str, born: dt.date | None) -> None:
    assert form.birth_date(field, TODAY) == born


def test_today_is_the_date_in_vietnam() -> None:
    before = dt.datetime.now(VIETNAM).date()
    today = form.today_in_vietnam()
    assert today in (before, dt.datetime.now(VIETNAM).date())  # the day may turn in between

"""Normalisation: the same request looks the same however it was typed."""

from __future__ import annotations

import pytest

from parsers.distance import within_one_edit
from parsers.normalize import clean, skeleton

# Each row: spellings that must meet.
MEET = [
    ("Техосмотр", "Techosmotr", "Tehosmotr", "Texosmotr", "Tekhosmotr", "TECHOSMOTR",
     "тех-осмотр", "Ｔｅｃｈｏｓｍｏｔｒ", "Tech\u00adosmotr"),
    ("Очередь в детсад", "Ochered' v detsad", "Ochered v detsad", "Ochered’ v detsad",
     "Ocheredʼ v detsad", "Ochered` v detsad", "ОЧЕРЕДЬ  В\nДЕТСАД", "Očered v detsad"),
    ("Очередь на жилье", "Очередь на жильё", "Ochered' na zhil'e", "Ochered na zhile"),
    ("Бала-бақшаға кезек", "Бала-бакшага кезек", "Bala-bakshaga kezek", "Бала бақшаға, кезек",
     "Bala-baqshağa kezek"),
    ("Тұрғын үйге кезек", "Тургын үйге кезек", "Тургын уйге кезек", "Turgyn uige kezek",
     "Tūrğyn üige kezek"),
    ("Техникалық байқау", "Техникалык байкау", "Tehnikalyk baikau", "Tekhnikalyk baykau",
     "Tehnikalyq baiqau"),
    ("ж ч ш ц ы й", "zh ch sh ts y i", "zh h sh ts i y"),
    ("х", "h", "kh", "x", "ch"),
    ("ә ғ қ ң ө ұ ү һ і", "а г к н о у у х и"),
]


@pytest.mark.parametrize("spellings", MEET, ids=[row[0] for row in MEET])
def test_spellings_meet(spellings: tuple[str, ...]) -> None:
    # Keywords are compared with the spaces between their words ignored (`тех-осмотр`).
    forms = {text: skeleton(text).replace(" ", "") for text in spellings}
    assert len(set(forms.values())) == 1, forms


SKELETONS = [
    ("Техосмотр 123 АВС 01", "tehosmotr 123 avs 01"),
    ("Techosmotr123ABC01", "tehosmotr 123 abs 01"),
    ("  Hello,   world!  ", "hello vorld"),
    ("Nguyễn Văn Đức", "nguien van dus"),
    ("жильё", "zhile"),
    ("объём", "obem"),
    ("Ｔｅｓｔ１２３", "test"),  # fullwidth digits are no digits
    ("٨ ١٢٣", ""),
    ("你好 hello", "hello"),
    ("", ""),
    ("\x00\x01\u200f", ""),
    ("😀", ""),
]


@pytest.mark.parametrize("text, form", SKELETONS)
def test_skeleton(text: str, form: str) -> None:
    assert skeleton(text) == form


CLEAN = [
    ("Techosmotr 123ABC01", "Techosmotr 123ABC01"),
    ("8\t123\nABC\r01", "8 123 ABC 01"),
    ("\x00\x07", "  "),
    ("\u200fTech\u200dosmotr\u00ad\ufeff", "Techosmotr"),
    ("8\u200b123", "8 123"),  # a zero-width space still separates
    ("１２３ ١٢٣", "１２３ ١٢٣"),  # digits as typed
]


@pytest.mark.parametrize("text, cleaned", CLEAN)
def test_clean(text: str, cleaned: str) -> None:
    assert clean(text) == cleaned


EDITS = [
    ("tehosmotr", "tehosmotr", True),
    ("tehosmotr", "tehosmotrr", True),
    ("tehosmotr", "tehosmtr", True),
    ("tehosmotr", "tehosmatr", True),
    ("tehosmotr", "tehsomotr", True),
    ("tehosmotr", "ethosmotr", True),
    ("tehosmotr", "tehosmort", True),
    ("tehosmotr", "tehosmo", False),
    ("tehosmotr", "teosmtr", False),
    ("tehosmotr", "htesomotr", False),
    ("ab", "ba", True),
    ("", "a", True),
    ("", "ab", False),
]


@pytest.mark.parametrize("a, b, close", EDITS)
def test_within_one_edit(a: str, b: str, close: bool) -> None:
    assert within_one_edit(a, b) is close
    assert within_one_edit(b, a) is close

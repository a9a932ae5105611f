"""How many messages a second `KeywordIndex.parse` handles on one core, over realistic traffic.

Run `python -m bench.parser [seconds]`. The traffic mixes every service in
every script and spelling the citizens use, with about one message in ten
malformed (unknown text, typos, bad plates, IINs and registrations).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from parsers.iin import check_digit
from parsers.keywords import KeywordIndex
from services.registry import default_registry

SHORTCODES = {
    "1414": ["tech_inspection", "kindergarten_queue", "housing_queue"],
    "8188": ["account_registration"],
}

_TECH = ("Техосмотр", "Techosmotr", "Техникалык байкау", "Техникалық байқау", "Tehnikalyk baikau",
         "8", "техосмотр", "TECHOSMOTR", "Tehosmotr", "Texosmotr", "Texocmotp")
_KINDERGARTEN = ("5", "Ochered' v detsad", "Бала-бақшаға кезек", "Бала-бакшага кезек",
                 "Bala-bakshaga kezek", "Очередь в детсад", "очередь в детсад", "Ochered v detsad")
_HOUSING = ("4", "Очередь на жилье", "Ochered' na zhil'e", "Тургын үйге кезек",
            "Тұрғын үйге кезек", "Turgyn uige kezek", "очередь на жильё", "Ochered na zhile")
_NAMES = ("Nguyen Van An", "Nguyễn Văn An", "Tran Thi Bich Ngoc", "Trần Thị Bích Ngọc",
          "Le Duc Tho", "Lê Đức Thọ", "Pham Hoang Phuc", "Phạm Hoàng Phúc")
_PLATE_LETTERS = "ABCEHKMOPTXY"
_CYRILLIC_LOOKALIKES = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")
_MALFORMED = ("Hello", "Spasibo", "45", "4a", "9 123ABC01", "Ochered na kvartiru", "", "?",
              "Techosmotr 12AB", "Техосмотр", "5", "5 123", "4 12345678901", "Stop",
              "Где пройти техосмотр?", "Tehosmotrr 123ABC01", "Ocheredd v detsad 050101500013",
              "🙂", "8123ABC01")


def _iin(rng: random.Random) -> str:
    while True:
        year, month, day = rng.randrange(1940, 2024), rng.randrange(1, 13), rng.randrange(1, 29)
        century = (3 if year < 2000 else 5) + rng.randrange(2)
        first11 = f"{year % 100:02d}{month:02d}{day:02d}{century}{rng.randrange(10000):04d}"
        check = check_digit(first11)
        if check is not None:
            return f"{first11}{check}"


def _plate(rng: random.Random) -> str:
    digits = f"{rng.randrange(1000):03d}"
    letters = "".join(rng.choice(_PLATE_LETTERS) for _ in range(3))
    if rng.random() < 0.7:
        shape = rng.choice(("{d}{l}{r}", "{d} {l} {r}", "{d}-{l}-{r}", "{d} {l}{r}"))
        plate = shape.format(d=digits, l=letters, r=f"{rng.randrange(1, 21):02d}")
    else:
        plate = rng.choice(("{a}{d}{l}", "{a} {d} {l}")).format(
            a=rng.choice(_PLATE_LETTERS), d=digits, l=letters)
    if rng.random() < 0.3:
        plate = plate.translate(_CYRILLIC_LOOKALIKES)
    return plate.lower() if rng.random() < 0.1 else plate


def _spaced(rng: random.Random, iin: str) -> str:
    return f"{iin[:6]} {iin[6:]}" if rng.random() < 0.1 else iin


def _registration(rng: random.Random) -> str:
    separator = rng.choice((",", ";", " , ", "; "))
    cmnd = "".join(rng.choice("0123456789") for _ in range(rng.choice((9, 12))))
    date = f"{rng.randrange(1, 29):02d}{rng.choice('./')}{rng.randrange(1, 13):02d}"
    date += f"{rng.choice('./')}{rng.randrange(1950, 2005)}"
    return separator.join(("TK", rng.choice(_NAMES), cmnd, date))


def sample_traffic(count: int = 2000, seed: int = 1414) -> list[tuple[str, str]]:
    """`count` (short code, text) pairs in the mix of a working day, the same for the same seed."""
    rng = random.Random(seed)
    kinds: list[tuple[float, Callable[[], tuple[str, str]]]] = [
        (0.30, lambda: ("1414", f"{rng.choice(_TECH)}{rng.choice((' ', ' ', ''))}{_plate(rng)}")),
        (0.20, lambda: ("1414", f"{rng.choice(_KINDERGARTEN)} {_spaced(rng, _iin(rng))}")),
        (0.10, lambda: ("1414", f"{rng.choice(_HOUSING)} {_spaced(rng, _iin(rng))}")),
        (0.10, lambda: ("1414", rng.choice(_HOUSING))),
        (0.20, lambda: ("8188", _registration(rng))),
        (0.07, lambda: ("1414", rng.choice(_MALFORMED))),
        (0.03, lambda: ("8188", rng.choice(("TK,Nguyen Van An,12345,01.01.1990", "Dang ky",
                                              "TK,Nguyen Van An,123456789,31.02.1990")))),
    ]
    weights = [weight for weight, _ in kinds]
    makers = [maker for _, maker in kinds]
    return [rng.choices(makers, weights)[0]() for _ in range(count)]


def measure(seconds: float = 2.0) -> dict[str, float | int]:
    """Parse the sample traffic over and over for `seconds`; the messages per second it reached."""
    index = KeywordIndex.build(default_registry(), SHORTCODES)
    traffic = sample_traffic()
    parse = index.parse
    messages = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for shortcode, text in traffic:
            parse(shortcode, text)
        messages += len(traffic)
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {"parser_msgs_per_s": messages / elapsed, "messages": messages, "seconds": elapsed}


if __name__ == "__main__":
    figures = measure(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
    print(f"parser_msgs_per_s={figures['parser_msgs_per_s']:.0f} messages={figures['messages']}"
          f" seconds={figures['seconds']:.2f}")

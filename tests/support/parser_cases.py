"""Shared tables of the parser tests: keywords, plates, IINs, registrations, near misses.

Every IIN here was checked by hand against the rule in SERVICES.md.
"""

from __future__ import annotations

import unicodedata

from parsers import KeywordIndex
from services.registry import default_registry

SHORTCODES = {
    "1414": ["tech_inspection", "kindergarten_queue", "housing_queue"],
    "8188": ["account_registration"],
}


def default_index() -> KeywordIndex:
    """The index of the default registry on the spec's short codes."""
    return KeywordIndex.build(default_registry(), SHORTCODES)


# (what the variant is, keyword as typed): every keyword of SERVICES.md and the ways people type it.
TECH_KEYWORDS = [
    ("seed cyrillic", "Техосмотр"),
    ("cyrillic lower", "техосмотр"),
    ("cyrillic upper", "ТЕХОСМОТР"),
    ("cyrillic with latin x", "Теxосмотр"),
    ("seed latin ch", "Techosmotr"),
    ("latin h", "Tehosmotr"),
    ("latin kh", "Tekhosmotr"),
    ("latin x", "Texosmotr"),
    ("latin upper", "TECHOSMOTR"),
    ("latin look-alikes of cyrillic", "Texocmotp"),
    ("latin look-alikes upper", "TEXOCMOTP"),
    ("cyrillic look-alikes of latin", "Тесhоsmоtr"),
    ("kazakh letters", "Техникалық байқау"),
    ("seed kazakh without kazakh letters", "Техникалык байкау"),
    ("seed kazakh latin", "Tehnikalyk baikau"),
    ("kazakh latin alphabet", "Tehnikalyq baiqau"),
    ("kazakh latin kh y", "Tekhnikalyk baykau"),
    ("seed digit", "8"),
]
KINDERGARTEN_KEYWORDS = [
    ("seed digit", "5"),
    ("seed latin", "Ochered' v detsad"),
    ("latin without apostrophe", "Ochered v detsad"),
    ("latin right quote", "Ochered’ v detsad"),
    ("latin modifier apostrophe", "Ocheredʼ v detsad"),
    ("latin backtick", "Ochered` v detsad"),
    ("latin caron", "Očered v detsad"),
    ("seed kazakh letters", "Бала-бақшаға кезек"),
    ("kazakh without kazakh letters", "Бала-бакшага кезек"),
    ("kazakh space for hyphen", "Бала бақшаға кезек"),
    ("kazakh one word", "Балабақшаға кезек"),
    ("seed kazakh latin", "Bala-bakshaga kezek"),
    ("kazakh latin alphabet", "Bala-baqshağa kezek"),
    ("seed cyrillic", "Очередь в детсад"),
    ("cyrillic upper", "ОЧЕРЕДЬ В ДЕТСАД"),
]
HOUSING_KEYWORDS = [
    ("seed digit", "4"),
    ("seed cyrillic", "Очередь на жилье"),
    ("cyrillic yo", "Очередь на жильё"),
    ("seed latin", "Ochered' na zhil'e"),
    ("latin without apostrophes", "Ochered na zhile"),
    ("latin right quotes", "Ochered’ na zhil’e"),
    ("seed kazakh letters", "Тұрғын үйге кезек"),
    ("seed kazakh mixed", "Тургын үйге кезек"),
    ("kazakh without kazakh letters", "Тургын уйге кезек"),
    ("seed kazakh latin", "Turgyn uige kezek"),
    ("kazakh latin alphabet", "Tūrğyn üige kezek"),
]

# Valid IINs: (IIN, what it shows).
VALID_IINS = [
    ("900101300126", "1990-01-01, male"),
    ("850715450125", "1985-07-15, female"),
    ("050303501235", "2005-03-03, male"),
    ("121229600011", "2012-12-29, female"),
    ("000229509993", "2000-02-29, a leap day"),
    ("991231400038", "check digit from the second weights"),
    ("200515100049", "1820-05-15, century digit 1"),
    ("010101200014", "1801-01-01, century digit 2"),
]
CHILD_IIN = "121229600011"
IIN = "900101300126"

# Invalid IINs: (text, why). Where only one rule is broken, the check digit is right.
INVALID_IINS = [
    ("900101300127", "wrong check digit"),
    ("900101700121", "century digit 7"),
    ("900101000127", "century digit 0"),
    ("901301300126", "month 13"),
    ("900230300128", "30 February"),
    ("010229300126", "29 February 1901"),
    ("000229100121", "29 February 1800"),
    ("900101300800", "no check digit fits (both sums 10)"),
    ("90010130012", "11 digits"),
    ("9001013001260", "13 digits"),
    ("90010130012a", "a letter"),
    ("９００１０１３００１２６", "fullwidth digits"),
    ("٩٠٠١٠١٣٠٠١٢٦", "Arabic-Indic digits"),
    ("9001013001２6", "one fullwidth digit"),
    ("", "empty"),
]

# Plates as typed -> the plate as returned.
PLATES = [
    ("123ABC01", "123ABC01"),
    ("123 ABC 01", "123ABC01"),
    ("123-ABC-01", "123ABC01"),
    ("123 abc 01", "123ABC01"),
    ("123АВС01", "123ABC01"),  # Cyrillic А В С
    ("123 авс 01", "123ABC01"),  # Cyrillic, lower case
    ("123 - АВС - 01", "123ABC01"),
    ("123\u00a0ABC\u00a001", "123ABC01"),  # no-break spaces
    ("123–ABC–01", "123ABC01"),  # en dashes
    ("777ЕКХ02", "777EKX02"),
    ("A123BCD", "A123BCD"),
    ("A 123 BCD", "A123BCD"),
    ("A-123-BCD", "A123BCD"),
    ("a 123 bcd", "A123BCD"),
    ("А123ВСЕ", "A123BCE"),  # Cyrillic throughout
    ("М 001 ОРТ", "M001OPT"),
    ("Х777УХХ", "X777YXX"),
]
BAD_PLATES = [
    ("", "empty"),
    ("12ABC01", "two digits first"),
    ("1234ABC01", "four digits first"),
    ("123AB01", "two letters"),
    ("123ABCD01", "four letters"),
    ("123ABC1", "one region digit"),
    ("123ABC012", "three region digits"),
    ("AB123CD", "neither mask"),
    ("A12BCD", "two digits in the letter-first mask"),
    ("A1234BCD", "four digits in the letter-first mask"),
    ("123ДЖЯ01", "Cyrillic letters that look like no Latin letter"),
    ("１２３ABC０１", "fullwidth digits"),
    ("١٢٣ABC٠١", "Arabic-Indic digits"),
    ("123ÀBC01", "a letter with a diacritic"),
    ("123ıBC01", "dotless i, which upper-cases to ASCII I"),
    ("123.ABC.01", "dots are not spaces"),
    ("123ABC01 extra", "more after the plate"),
]

REGISTRATIONS = [
    ("TK,Nguyen Van An,123456789,01.02.1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK;Nguyen Van An;123456789;01/02/1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK , Nguyen Van An , 123456789 , 01.02.1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("tk; Nguyen  Van   An ;123456789; 1/2/1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK,Nguyễn Văn Đức,123456789,31.12.1985", ("Nguyen Van Duc", "123456789", "1985-12-31")),
    ("TK,Trần Thị Bích Ngọc,012345678901,29.02.2000", ("Tran Thi Bich Ngoc", "012345678901",
                                                         "2000-02-29")),
    ("TK,Nguyen Van An,123 456 789,01.02.1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK,Nguyen Van An;123456789,01.02.1990", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK,Nguyen Van An,123456789,01.02.1990.", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK,Nguyen Van An,123456789,01.02.1990;", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("  TK,Nguyen Van An,123456789,01.02.1990\n", ("Nguyen Van An", "123456789", "1990-02-01")),
    ("TK,NGUYEN VAN AN,123456789,01.02.1990", ("NGUYEN VAN AN", "123456789", "1990-02-01")),
    ("TK,Nguye\u0302\u0303n Van An,123456789,01.02.1990", ("Nguyen Van An", "123456789",
                                                           "1990-02-01")),  # combining marks
]
BAD_REGISTRATIONS = [
    ("", "empty"),
    ("TK", "no fields"),
    ("Nguyen Van An,123456789,01.02.1990", "no TK"),
    ("TK,Nguyen Van An,123456789", "no birth date"),
    ("TK,Nguyen Van An,123456789,01.02.1990,extra", "a fifth field"),
    ("TK Nguyen Van An 123456789 01.02.1990", "no separators"),
    ("TK,,123456789,01.02.1990", "no name"),
    ("TK,Nguyen Van 2,123456789,01.02.1990", "a digit in the name"),
    ("TK,Нгуен Ван Ан,123456789,01.02.1990", "a name in Cyrillic"),
    ("TK,Nguyen Van An 🙂,123456789,01.02.1990", "an emoji in the name"),
    ("TK," + "A" * 101 + ",123456789,01.02.1990", "a name longer than 100 letters"),
    ("TK,Nguyen Van An,12345678,01.02.1990", "8-digit CMND"),
    ("TK,Nguyen Van An,1234567890,01.02.1990", "10-digit CMND"),
    ("TK,Nguyen Van An,12345678A,01.02.1990", "a letter in the CMND"),
    ("TK,Nguyen Van An,１２３４５６７８９,01.02.1990", "fullwidth CMND"),
    ("TK,Nguyen Van An,١٢٣٤٥٦٧٨٩,01.02.1990", "Arabic-Indic CMND"),
    ("TK,Nguyen Van An,123456789,31.02.1990", "31 February"),
    ("TK,Nguyen Van An,123456789,29.02.1990", "29 February in a common year"),
    ("TK,Nguyen Van An,123456789,01.13.1990", "month 13"),
    ("TK,Nguyen Van An,123456789,1990-02-01", "ISO date"),
    ("TK,Nguyen Van An,123456789,01.02.90", "two-digit year"),
    ("TK,Nguyen Van An,123456789,01.02.1899", "before 1900"),
    ("TK,Nguyen Van An,123456789,01.02.2999", "in the future"),
    ("TK,Nguyen Van An,123456789,０１.０２.１９９０", "fullwidth date"),
]

# Texts to 1414 that a tolerant parser could be tempted to route, and must not.
NEAR_MISSES = [
    ("9 123ABC01", "9 is no keyword"),
    ("45", "a number that starts with a keyword"),
    ("4a", "a keyword number glued to a letter"),
    ("44 900101300126", "a doubled keyword number"),
    ("08 123ABC01", "a leading zero"),
    ("8123ABC01", "a keyword number glued to the plate"),
    ("5121229600011", "a keyword number glued to the IIN"),
    ("8.5", "a decimal number"),
    ("Ochered na kvartiru", "another queue"),
    ("Ochered v shkolu 121229600011", "another queue, with an IIN"),
    ("Ochered", "the first word only"),
    ("Очередь", "the first word only, Cyrillic"),
    ("Kezek 900101300126", "the last word only"),
    ("Bala 121229600011", "half a keyword"),
    ("Turgyn 900101300126", "half a keyword"),
    ("Tehnikalyk 123ABC01", "half a keyword"),
    ("Tehnika 123ABC01", "a prefix of a keyword"),
    ("Techo 123ABC01", "a short prefix of a keyword"),
    ("Osmotr 123ABC01", "the end of a keyword"),
    ("Tehosmo 123ABC01", "two letters short"),
    ("Teosmtr 123ABC01", "two typos"),
    ("Techosmotrik", "a longer word, and no plate after it"),
    ("Detsad 121229600011", "the end of a keyword"),
    ("Hello", "a greeting"),
    ("Spasibo", "thanks"),
    ("Stop", "an opt-out"),
    ("Da", "yes"),
    ("?", "a question mark"),
    ("Где пройти техосмотр?", "the keyword inside a sentence"),
    ("Pozhaluista techosmotr 123ABC01", "a polite word before the keyword"),
    ("TK,Nguyen Van An,123456789,01.02.1990", "a Da Nang registration sent to 1414"),
    ("你好Techosmotr 123ABC01", "foreign letters glued before the keyword"),
    ("٨ 123ABC01", "Arabic-Indic eight"),
    ("８ 123ABC01", "fullwidth eight"),
]


def _digit_lookalikes() -> dict[int, list[str]]:
    """Non-ASCII characters that are digits, or turn into one ASCII digit under NFKC, by value."""
    found: dict[int, list[str]] = {value: [] for value in range(10)}
    for cp in range(0x80, 0x20000):
        char = chr(cp)
        folded = unicodedata.normalize("NFKC", char)
        if unicodedata.category(char) == "Nd":
            found[unicodedata.digit(char)].append(char)
        elif len(folded) == 1 and folded.isascii() and folded.isdigit():
            found[int(folded)].append(char)
    return found


DIGIT_LOOKALIKES = _digit_lookalikes()
"""Per value 0-9, every non-ASCII character some code would read as that digit."""

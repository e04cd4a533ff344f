"""The one rule for the text the registry keeps as an identity or a name: reference_id,
device_identifier, account, division, profile and field names.

Such text is compared for uniqueness and shown to people, so two values that look the same
must be the same value, and a value must not hide or reorder what is shown around it:

- it is normalised to Unicode NFC before it is checked, stored or compared (NFC and NFD
  `café` are one value);
- it may not contain a control character (Cc: C0, DEL, C1 such as U+0085), a format
  character (Cf: bidi overrides and isolates, zero-width space and joiners, the BOM, tag
  characters), a line or paragraph separator (Zl, Zp: U+2028, U+2029), a surrogate (Cs) or
  a noncharacter (U+FDD0-U+FDEF and every U+xFFFE, U+xFFFF), nor any other of Unicode's
  default-ignorable code points (invisible when not supported: the combining grapheme
  joiner, Hangul fillers, variation selectors; `café` and `café` + U+FE0F look the same);
- it may not be only whitespace.

Other spaces (U+00A0), private-use and not yet assigned code points are ordinary text: a
character assigned by a later Unicode version must not be refused by one Python and
accepted by another.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from devreg.core.errors import InvalidInput

FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt) outside Cf, a fixed
# table so that it does not change with the Python version.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\ufff0-\ufff8\U000e0000-\U000e0fff]"
)

# The rule in words, for the OpenAPI documents and the README.
TEXT_RULE = (
    "Normalised to Unicode NFC before it is stored or compared. Refused when it is only"
    " whitespace or contains a control character (Cc, e.g. U+0085), a format character"
    " (Cf: bidi controls, zero-width characters), a line or paragraph separator (U+2028,"
    " U+2029), a surrogate, a noncharacter (e.g. U+FFFF) or another default-ignorable"
    " code point (e.g. U+034F, U+3164, the variation selectors U+FE00-U+FE0F)."
)


def is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def is_forbidden(char: str) -> bool:
    # str.isprintable() refuses all of C* and Z* but the ASCII space, so the category is
    # only looked up for those; the default-ignorables beyond them are in the table.
    if _IGNORABLE.match(char) is not None:
        return True
    return not char.isprintable() and (
        unicodedata.category(char) in FORBIDDEN_CATEGORIES or is_noncharacter(ord(char))
    )


def first_forbidden(value: str) -> int | None:
    """The index of the first forbidden character, or None. str.isprintable() runs in C
    and is true for nearly every value, so the loop over characters is the rare path."""
    if value.isprintable():
        if value.isascii():
            return None
        ignorable = _IGNORABLE.search(value)
        return None if ignorable is None else ignorable.start()
    for index, char in enumerate(value):
        if is_forbidden(char):
            return index
    return None


def nfc(value: str) -> str:
    """`value` as stored and compared: for a lookup by a name given elsewhere."""
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def check_text(value: str, what: str, max_length: int | None) -> str:
    """`value` in NFC, if it follows the rule and has at most `max_length` characters
    (as sent and once normalised; None: any length, for a filter, which a longer value
    simply does not match); InvalidInput naming `what` and the fault otherwise."""
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{what} must be at most {max_length} characters", what)
    index = first_forbidden(value)
    if index is not None:
        raise InvalidInput(
            f"{what} must not contain control characters, format characters, line or"
            f" paragraph separators, noncharacters or other invisible (default-ignorable)"
            f" characters: U+{ord(value[index]):04X} at"
            f" position {index}",
            what,
        )
    if not value.isascii():  # ASCII is already NFC; normalize() is a quick check when NFC
        value = unicodedata.normalize("NFC", value)
        if max_length is not None and len(value) > max_length:  # a few decompose under NFC
            raise InvalidInput(f"{what} must be at most {max_length} characters", what)
    if value.isspace():
        raise InvalidInput(f"{what} must not be empty or only whitespace", what)
    return value


@cache
def forbidden_pattern() -> str:
    """A JSON Schema `pattern` that refuses the forbidden characters of the Basic
    Multilingual Plane, made from `is_forbidden` itself (the others, and NFC and
    whitespace, are in TEXT_RULE's words). Surrogates are left out: JSON text cannot
    carry a lone one, and a schema-driven client could not send one."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF or not is_forbidden(chr(code)):
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges
    )
    return f"^[^{body}]*$"


TEXT_PATTERN = forbidden_pattern()

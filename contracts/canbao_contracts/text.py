"""The text rules of every personal value the registry takes in (a name, an address, a phone, a
document number): one spelling per value, nothing invisible, nothing PostgreSQL refuses.

Our convention (the documents are silent; Unicode Standard Annex #15 for the normal form):

* **Normalised, not refused: compatibility spellings.** Every value is kept in Unicode NFKC,
  trimmed of spaces. Full-width digits and letters a Chinese input method types (`１３８…`, `Ｘ`),
  the ideographic space, CJK compatibility ideographs become their one standard spelling, so
  `１３８００１３８０００` and `13800138000` are one phone, never two. Refusing them would turn away
  what a kiosk's or a clerk's input method naturally produces.
* **Refused in what a person or a clerk submits, dropped from what a source system sends:**
  - control characters (Unicode Cc: C0 U+0000-U+001F, DEL, C1 U+0080-U+009F), the tab and the
    newline included: a name, an address or a phone is one line; PostgreSQL moreover refuses
    U+0000 in text and jsonb, so one such value would stop every write it travels in;
  - line and paragraph separators (Zl, Zp) and format characters (Cf: zero-width space, byte
    order mark, bidirectional overrides): invisible, they make two spellings look like one;
  - surrogates (Cs): half of a UTF-16 pair is no character and UTF-8 cannot encode it;
  - noncharacters (U+FDD0-U+FDEF, U+xxFFFE, U+xxFFFF).
* **Kept:** private-use characters (Co), where household registers encode rare characters of
  names (生僻字), and code points unassigned in our Unicode version (the sender's may be newer).

A collected item is checked with `forbidden_character` and refused with its position and code
point (never the value: personal data); a source value goes through `source_text`, which turns
line breaks and tabs into a space, removes format characters (invisible: the value reads the same
without them) and treats a value still holding a forbidden character as absent (see there).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# Categories refused wherever they are (the module docstring says why).
_FORBIDDEN_CATEGORIES: Final = {"Cc": "control", "Zl": "control", "Zp": "control",
                                 "Cf": "invisible", "Cs": "surrogate"}  # fmt: skip
# Line breaks and tabs a source system's multi-line field may hold: one space in the value.
_SOURCE_BREAKS: Final = re.compile("[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
# Characters that are their own NFKC form and never refused: printable ASCII and the CJK Unified
# Ideographs (the basic block and extension A) — what nearly every name, address, phone and number
# is made of. A value of these alone needs no look at each character (the rules' answer for it is
# the value without its edge spaces): the consumers read millions of such values in a snapshot.
_PLAIN: Final = re.compile("[\x20-\x7e\u3400-\u4dbf\u4e00-\u9fff]*")


class ForbiddenKind(StrEnum):
    CONTROL = "control"
    INVISIBLE = "invisible"
    SURROGATE = "surrogate"
    NONCHARACTER = "noncharacter"


@dataclass(frozen=True, slots=True)
class ForbiddenCharacter:
    """The first character of a value the rules refuse: where and what, never the value."""

    position: int  # 1-based, in the canonical value
    code_point: str  # "U+0000"
    kind: ForbiddenKind


def canonical(value: str) -> str:
    """`value` as the registry keeps it: NFKC, without leading or trailing spaces. Idempotent."""
    for _ in range(8):  # NFKC may turn an edge character into a space (U+00A8 → " ̈"): repeat
        normal = unicodedata.normalize("NFKC", value).strip(" ")
        if normal == value:
            return value
        value = normal
    return value


def forbidden_character(value: str) -> ForbiddenCharacter | None:
    """The first character of `value` the rules refuse, or None when it has none."""
    if _PLAIN.fullmatch(value):
        return None
    for index, character in enumerate(value):
        if (kind := _forbidden_kind(character)) is not None:
            return ForbiddenCharacter(index + 1, f"U+{ord(character):04X}", kind)
    return None


def is_clean(value: str) -> bool:
    """Whether `value` is canonical and holds no forbidden character: storable as it is."""
    return canonical(value) == value and forbidden_character(value) is None


def source_text(value: object) -> str | None:
    """A source system's text column as the registry keeps it, or None for no value.

    A source system is not ours to reject (sources.md: we read its tables): a run of line breaks
    and tabs becomes a space and format characters are removed, but a value still holding a control
    character (a NUL in a name), a surrogate or a noncharacter is treated as absent rather than
    guessed at — the item is then taken from another source, or reported missing, a gap the
    survey collects (domain.md §4). Blank is absent too."""
    if value is None:
        return None
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text.strip(" ") or None
    text = _SOURCE_BREAKS.sub(" ", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = canonical(text)
    if not text or forbidden_character(text) is not None:
        return None
    return text


def _forbidden_kind(character: str) -> ForbiddenKind | None:
    if (kind := _FORBIDDEN_CATEGORIES.get(unicodedata.category(character))) is not None:
        return ForbiddenKind(kind)
    code = ord(character)
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
        return ForbiddenKind.NONCHARACTER
    return None

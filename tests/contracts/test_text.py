"""The text rules every entry shares (canbao_contracts.text): one spelling per value, nothing
invisible or unstorable, over arbitrary unicode and on what a clerk or a source system sends."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from canbao_contracts.text import (
    ForbiddenKind,
    canonical,
    forbidden_character,
    is_clean,
    source_text,
)

# Every code point, surrogates and controls included, weighted towards the troublesome ones.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.text(
    st.sampled_from("\x00\t\n\x1f\x85\u200b\ufeff\u202e\ud800\udc00\ufdd0\uffff \u3000¨１Ａ王伟"),
    max_size=12,
)


def storable(value: str) -> bool:
    """What PostgreSQL takes in text and jsonb: valid UTF-8 without U+0000."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


@given(ANY_TEXT)
@example("\x00王伟")
@example(" ¨")
def test_a_source_value_is_absent_or_clean_and_storable(raw: str) -> None:
    kept = source_text(raw)
    assert kept is None or (kept and is_clean(kept) and storable(kept))
    assert source_text(kept) == kept  # cleaning twice changes nothing


@given(ANY_TEXT)
def test_a_value_without_a_forbidden_character_is_stored_in_one_spelling(raw: str) -> None:
    kept = canonical(raw)
    assert canonical(kept) == kept
    assert unicodedata.is_normalized("NFKC", kept) and kept == kept.strip(" ")
    if forbidden_character(kept) is None:
        assert is_clean(kept) and storable(kept)


@given(ANY_TEXT, ANY_TEXT)
def test_a_forbidden_character_is_found_wherever_it_is(before: str, after: str) -> None:
    found = forbidden_character(f"{before}\x00{after}")
    assert found is not None and found.position <= len(before) + 1


# Values as sources send them: mostly ASCII and common hanzi, now and then anything at all.
SOURCE_LIKE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    | st.characters(min_codepoint=0x3400, max_codepoint=0x9FFF)
    | st.sampled_from(" \u3000\t\n\ufeff１Ａ\x00\ud800\uf900\ue000"),
    max_size=30,
)


@given(SOURCE_LIKE | ANY_TEXT)
@example(" 王伟 ")
@example("   ")
def test_a_plain_value_is_read_as_the_rules_read_it_character_by_character(raw: str) -> None:
    """Values of printable ASCII and common hanzi take a short way through source_text and
    forbidden_character: the answer is the one the rules give character by character."""
    assert source_text(raw) == _source_text_by_the_rules(raw)
    found = forbidden_character(raw)
    assert (found and (found.position, found.code_point)) == _forbidden_by_the_rules(raw)


def _source_text_by_the_rules(raw: str) -> str | None:
    text = re.sub("[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+", " ", raw)
    text = canonical("".join(c for c in text if unicodedata.category(c) != "Cf"))
    return text if text and _forbidden_by_the_rules(text) is None else None


def _forbidden_by_the_rules(value: str) -> tuple[int, str] | None:
    for index, character in enumerate(value):
        code = ord(character)
        if unicodedata.category(character) in ("Cc", "Zl", "Zp", "Cf", "Cs") or (
            0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
        ):
            return index + 1, f"U+{code:04X}"
    return None


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("１３８００１３８０００", "13800138000"),  # full-width digits: one phone, not two
        ("\u3000王伟 ", "王伟"),  # the ideographic space trimmed like any space
        ("贵阳市\n云岩区", "贵阳市 云岩区"),  # a source's line break: a space
        ("\ufeff王伟", "王伟"),  # a byte order mark: invisible, removed
        ("\x00王伟", None),  # a NUL: the value is not guessed at, it is absent
        ("王\x07伟", None),
        ("  ", None),
    ],
)
def test_source_values(raw: str, kept: str | None) -> None:
    assert source_text(raw) == kept


@pytest.mark.parametrize(
    ("value", "position", "code_point", "kind"),
    [
        ("\x00王伟", 1, "U+0000", ForbiddenKind.CONTROL),
        ("王伟\t", 3, "U+0009", ForbiddenKind.CONTROL),
        ("贵阳市\u2028云岩区", 4, "U+2028", ForbiddenKind.CONTROL),
        ("王\u200b伟", 2, "U+200B", ForbiddenKind.INVISIBLE),
        ("王\ud800", 2, "U+D800", ForbiddenKind.SURROGATE),
        ("王\uffff", 2, "U+FFFF", ForbiddenKind.NONCHARACTER),
    ],
)
def test_what_a_clerk_cannot_submit_is_located(
    value: str, position: int, code_point: str, kind: ForbiddenKind
) -> None:
    found = forbidden_character(value)
    assert found is not None
    assert (found.position, found.code_point, found.kind) == (position, code_point, kind)


def test_private_use_characters_of_rare_names_are_kept() -> None:
    assert forbidden_character("王\ue000") is None and source_text("王\ue000") == "王\ue000"

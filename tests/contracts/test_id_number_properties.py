"""Properties of the ID number rules (domain.md §3) over generated numbers."""

from __future__ import annotations

from datetime import date

from hypothesis import assume, given
from hypothesis import strategies as st

from canbao_contracts.codes import Gender
from canbao_contracts.id_numbers import (
    PROVINCE_CODES,
    DefectCode,
    check_character,
    mask,
    normalise,
    parse,
    possible_corrections,
    validate,
)

TODAY = date(2026, 11, 22)
CHECK_ALPHABET = "0123456789X"


@st.composite
def valid_numbers(
    draw: st.DrawFn, *, born_after: date = date(1900, 1, 1), born_before: date = TODAY
) -> str:
    """A number built like a real one: a province, any district, a birth date, a sequence."""
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    district = draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    born = draw(st.dates(min_value=born_after, max_value=born_before))
    sequence = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{province}{district}{born:%Y%m%d}{sequence:03}"
    return first17 + check_character(first17)


def legacy_form(number: str) -> str:
    """The 15-digit number a person born in the 1900s had before 1999."""
    return number[:6] + number[8:17]


def sloppy(number: str, data: st.DataObject) -> str:
    """The number as a clerk might type it: lower-case x, spaces anywhere."""
    spaces = st.sampled_from(["", " ", "\u3000", "\t"])
    return "".join(data.draw(spaces) + c for c in number.replace("X", "x")) + data.draw(spaces)


@given(st.text())
def test_normalise_is_idempotent_on_any_text(raw: str) -> None:
    assert normalise(normalise(raw)) == normalise(raw)


@given(valid_numbers(), st.data())
def test_normalise_undoes_lower_case_and_spaces(number: str, data: st.DataObject) -> None:
    typed = sloppy(number, data)
    assert normalise(typed) == number
    assert normalise(normalise(typed)) == number


@given(valid_numbers())
def test_every_generated_valid_number_validates(number: str) -> None:
    assert validate(number, today=TODAY) == []


@given(valid_numbers())
def test_parse_reads_back_region_birth_date_and_gender(number: str) -> None:
    citizen = parse(number, today=TODAY)

    assert citizen.number == number
    assert citizen.region_code == number[:6]
    assert f"{citizen.birth_date:%Y%m%d}" == number[6:14]
    assert citizen.gender is (Gender.MALE if int(number[16]) % 2 == 1 else Gender.FEMALE)


@given(valid_numbers(born_before=date(1999, 12, 31)))
def test_fifteen_digit_form_and_its_conversion_normalise_alike(number: str) -> None:
    assert normalise(legacy_form(number)) == normalise(number) == number
    assert parse(legacy_form(number), today=TODAY).was_legacy_15


@given(valid_numbers(), st.integers(min_value=0, max_value=17), st.data())
def test_a_single_changed_character_is_always_detected(
    number: str, position: int, data: st.DataObject
) -> None:
    # ISO 7064 MOD 11-2: every weight 2^k mod 11 is non-zero and 11 is prime, so changing one
    # character by d (0 < |d| < 11) changes the weighted sum mod 11: the check must fail.
    alphabet = CHECK_ALPHABET if position == 17 else CHECK_ALPHABET[:10]
    changed = data.draw(st.sampled_from([c for c in alphabet if c != number[position]]))
    mistyped = number[:position] + changed + number[position + 1 :]

    assert DefectCode.BAD_CHECK_DIGIT in {d.code for d in validate(mistyped, today=TODAY)}


@given(valid_numbers(), st.integers(min_value=0, max_value=15))
def test_two_swapped_neighbouring_digits_are_always_detected_and_can_be_undone(
    number: str, position: int
) -> None:
    # Neighbouring weights differ (w_i = 2·w_{i+1} mod 11), so a swap of two different digits
    # changes the weighted sum: the check fails, and the original is among the corrections.
    a, b = number[position], number[position + 1]
    assume(a != b)
    swapped = number[:position] + b + a + number[position + 2 :]

    assert DefectCode.BAD_CHECK_DIGIT in {d.code for d in validate(swapped, today=TODAY)}
    assert number in possible_corrections(swapped, today=TODAY)


@given(valid_numbers())
def test_mask_shows_only_the_first_and_last_four(number: str) -> None:
    masked = mask(number)
    assert masked == number[:4] + "*" * 10 + number[-4:]


def _valid_by_the_standard(number: str) -> bool:
    """GB 11643's rules for an 18-character number, spelt out independently of id_numbers."""
    if len(number) != 18 or not all(c in "0123456789" for c in number[:17]):
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(number[:17]))
    return (
        number[:2] in PROVINCE_CODES
        and date(1900, 1, 1) <= born <= TODAY
        and number[17] == "10X98765432"[total % 11]
    )


@given(
    st.one_of(
        valid_numbers(),
        valid_numbers(born_after=date(1899, 1, 1), born_before=date(1900, 1, 1)),
        valid_numbers(born_after=TODAY, born_before=date(2030, 12, 31)),
    ),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=17), st.sampled_from(CHECK_ALPHABET + "a٣")),
        max_size=3,
    ),
)
def test_a_number_validates_exactly_when_the_standard_says_it_is_valid(
    number: str, changes: list[tuple[int, str]]
) -> None:
    """Real-looking numbers, some born before 1900 or after TODAY, with up to three characters
    replaced (wrong dates, provinces, check characters, a non-ASCII digit)."""
    for position, character in changes:
        number = number[:position] + character + number[position + 1 :]
    assert (validate(number, today=TODAY) == []) == _valid_by_the_standard(number)

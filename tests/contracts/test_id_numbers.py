"""The citizen ID number rules of domain.md §3 (GB 11643-1999), one test per rule."""

from __future__ import annotations

from datetime import date

import pytest

from canbao_contracts.codes import Gender
from canbao_contracts.id_numbers import (
    CitizenId,
    DefectCode,
    InvalidIdNumber,
    check_character,
    mask,
    mask_name,
    normalise,
    parse,
    possible_corrections,
    validate,
)

TODAY = date(2026, 11, 22)
# A man born 1990-01-01 in Nanming district, Guiyang (520102): the number api.md masks.
GUIYANG_MAN = "52010219900101123X"
GUIYANG_MAN_LEGACY = "520102900101123"
GUIYANG_WOMAN = "520102198512030024"


def codes(raw: str) -> list[DefectCode]:
    return [defect.code for defect in validate(raw, today=TODAY)]


def only_defect(raw: str, code: DefectCode) -> tuple[str, str]:
    """The English and Chinese messages of the single defect `raw` must have."""
    defects = validate(raw, today=TODAY)
    assert [defect.code for defect in defects] == [code]
    return defects[0].message, defects[0].message_zh


# -- Valid numbers --------------------------------------------------------------------------------


def test_the_standards_own_example_is_valid() -> None:
    citizen = parse("11010519491231002X", today=TODAY)

    assert citizen.region_code == "110105"
    assert citizen.birth_date == date(1949, 12, 31)
    assert citizen.gender is Gender.FEMALE


def test_eighteen_digit_number_yields_region_birth_date_and_gender() -> None:
    assert parse(GUIYANG_MAN, today=TODAY) == CitizenId(
        number=GUIYANG_MAN,
        region_code="520102",
        birth_date=date(1990, 1, 1),
        gender=Gender.MALE,
        was_legacy_15=False,
    )


def test_odd_sequence_is_a_man_and_even_sequence_a_woman() -> None:
    assert parse(GUIYANG_MAN, today=TODAY).gender is Gender.MALE  # sequence 123
    assert parse(GUIYANG_WOMAN, today=TODAY).gender is Gender.FEMALE  # sequence 002


def test_check_character_weighs_the_first_seventeen_digits() -> None:
    assert check_character("11010519491231002") == "X"  # sum mod 11 = 2
    assert check_character("52010219851203002") == "4"
    assert check_character("52010219900101122") == "1"


def test_check_character_needs_exactly_seventeen_digits() -> None:
    for wrong in ("5201021990010112", "520102199001011234", "5201021990010112A"):
        with pytest.raises(ValueError, match="expected 17 digits"):
            check_character(wrong)


def test_fifteen_digit_number_converts_to_eighteen() -> None:
    assert normalise(GUIYANG_MAN_LEGACY) == GUIYANG_MAN


def test_fifteen_digit_number_is_the_same_person_as_its_eighteen_digit_form() -> None:
    legacy, current = parse(GUIYANG_MAN_LEGACY, today=TODAY), parse(GUIYANG_MAN, today=TODAY)

    assert legacy.number == current.number
    assert legacy.was_legacy_15 and not current.was_legacy_15
    assert (legacy.birth_date, legacy.gender) == (date(1990, 1, 1), Gender.MALE)


def test_lower_case_x_is_the_same_as_upper_case() -> None:
    assert normalise("52010219900101123x") == GUIYANG_MAN
    assert validate("52010219900101123x", today=TODAY) == []


def test_spaces_tabs_and_full_width_spaces_are_ignored() -> None:
    assert normalise(" 520102 19900101 123x\t") == GUIYANG_MAN
    assert normalise("520102\u300019900101\u3000123X") == GUIYANG_MAN


def test_full_width_digits_from_a_chinese_input_method_are_read() -> None:
    assert normalise("５２０１０２１９９００１０１１２３ｘ") == GUIYANG_MAN


def test_normalise_only_cleans_an_invalid_number() -> None:
    assert normalise(" 520102901301123 ") == "520102901301123"  # month 13: not converted
    assert normalise("52010219900101123a") == "52010219900101123a"


def test_born_today_is_valid_and_born_on_1900_01_01_is_valid() -> None:
    assert codes(f"520102{TODAY:%Y%m%d}001" + check_character(f"520102{TODAY:%Y%m%d}001")) == []
    assert codes("520102190001010017") == []


def test_leap_day_is_a_real_birth_date() -> None:
    assert codes("520102200002290045") == []


@pytest.mark.parametrize("province", ["11", "46", "54", "65", "71", "81", "82"])
def test_every_province_of_gb_t_2260_is_accepted(province: str) -> None:
    first17 = f"{province}010219900101123"
    assert codes(first17 + check_character(first17)) == []


# -- Defects, each reported precisely --------------------------------------------------------------


def test_empty_number_is_reported() -> None:
    for raw in ("", "   ", "\u3000"):
        message, message_zh = only_defect(raw, DefectCode.EMPTY)
        assert message == "the ID number is empty"
        assert message_zh == "公民身份号码为空"


def test_wrong_length_says_how_many_characters_there_are() -> None:
    message, message_zh = only_defect(GUIYANG_MAN[:17], DefectCode.BAD_LENGTH)

    assert "17 characters instead of 18" in message
    assert message_zh == "公民身份号码应为18位（旧号码为15位），实为17位"


def test_non_digit_character_names_its_position() -> None:
    message, message_zh = only_defect("520102199001O1123X", DefectCode.BAD_CHARACTERS)

    assert message == "non-digit character 'O' at position 13"
    assert message_zh == "第13位“O”不是数字"


def test_every_non_digit_character_is_listed() -> None:
    message, message_zh = only_defect("5201-219900101123A", DefectCode.BAD_CHARACTERS)

    assert message == "non-digit characters '-' at position 5, 'A' at position 18"
    assert message_zh == "第5位“-”不是数字；第18位“A”不是数字"


def test_x_anywhere_but_the_eighteenth_character_is_refused() -> None:
    message, message_zh = only_defect("5201021990010112X3", DefectCode.BAD_CHARACTERS)

    assert "'X' at position 17" in message and "X may only be the 18th" in message
    assert message_zh == "第17位“X”不是数字（X只能是第18位校验码）"


def test_a_fifteen_digit_number_has_no_check_character() -> None:
    message, _ = only_defect("52010290010112X", DefectCode.BAD_CHARACTERS)
    assert "'X' at position 15" in message


def test_invisible_characters_are_shown_by_their_code_point() -> None:
    message, _ = only_defect("520102199001\u200b01123X"[:18], DefectCode.BAD_CHARACTERS)
    assert "'U+200B' at position 13" in message


def test_unknown_province_is_reported() -> None:
    first17 = "99010219900101123"
    message, message_zh = only_defect(first17 + check_character(first17), DefectCode.BAD_REGION)

    assert message == "region code 990102 starts with 99, which is not a province of GB/T 2260"
    assert message_zh == "行政区划代码990102的前两位99不是省级行政区划代码（GB/T 2260）"


def test_month_thirteen_is_reported() -> None:
    first17 = "52010219901301123"
    message, message_zh = only_defect(first17 + check_character(first17), DefectCode.BAD_BIRTH_DATE)

    assert message == "birth date 19901301: month 13 does not exist"
    assert message_zh == "出生日期19901301中的月份13不存在"


def test_february_thirtieth_is_reported_with_the_length_of_the_month() -> None:
    first17 = "52010219900230123"
    message, message_zh = only_defect(first17 + check_character(first17), DefectCode.BAD_BIRTH_DATE)

    assert message == "birth date 19900230: day 30 does not exist (1990-02 has 28 days)"
    assert message_zh == "出生日期19900230中的日期30不存在（1990年2月只有28天）"


def test_1900_was_not_a_leap_year() -> None:
    first17 = "52010219000229123"
    assert codes(first17 + check_character(first17)) == [DefectCode.BAD_BIRTH_DATE]


def test_birth_before_1900_is_refused() -> None:
    first17 = "52010218991231123"
    message, message_zh = only_defect(first17 + check_character(first17), DefectCode.BAD_BIRTH_DATE)

    assert message == "birth date 18991231 is before 1900-01-01"
    assert message_zh == "出生日期18991231早于1900年1月1日"


def test_birth_in_the_future_is_refused() -> None:
    first17 = "52010220261123123"  # the day after TODAY
    message, message_zh = only_defect(
        first17 + check_character(first17), DefectCode.FUTURE_BIRTH_DATE
    )

    assert message == "birth date 20261123 is in the future (today is 2026-11-22)"
    assert message_zh == "出生日期20261123晚于今天（2026-11-22）"


def test_wrong_check_digit_names_expected_character() -> None:
    message, message_zh = only_defect("520102199001011233", DefectCode.BAD_CHECK_DIGIT)

    assert message == "the check character is 3 but should be X"
    assert message_zh == "校验码应为X，实为3"


def test_fifteen_digit_number_with_a_bad_date_is_refused_and_kept_as_it_is() -> None:
    message, message_zh = only_defect("520102901301123", DefectCode.BAD_BIRTH_DATE)

    assert message == "birth date 901301: month 13 does not exist"
    assert message_zh == "出生日期901301中的月份13不存在"
    assert normalise("520102901301123") == "520102901301123"


def test_several_defects_are_reported_together() -> None:
    assert codes("990102199002301233") == [
        DefectCode.BAD_REGION,
        DefectCode.BAD_BIRTH_DATE,
        DefectCode.BAD_CHECK_DIGIT,
    ]
    assert codes("99010219901301123A") == [
        DefectCode.BAD_CHARACTERS,
        DefectCode.BAD_REGION,
        DefectCode.BAD_BIRTH_DATE,
    ]


def test_parse_refuses_an_invalid_number_with_every_defect() -> None:
    with pytest.raises(InvalidIdNumber) as raised:
        parse("990102199002301233", today=TODAY)

    assert isinstance(raised.value, ValueError)
    assert [d.code for d in raised.value.defects] == codes("990102199002301233")
    assert "should be 6" in str(raised.value)


def test_defect_codes_are_a_stable_contract() -> None:
    assert [code.value for code in DefectCode] == [
        "empty",
        "bad_length",
        "bad_characters",
        "bad_region",
        "bad_birth_date",
        "future_birth_date",
        "bad_check_digit",
    ]


# -- Help for the clerk ---------------------------------------------------------------------------


def test_corrections_for_a_typo_in_the_check_character() -> None:
    assert possible_corrections("520102199001011233", today=TODAY)[0] == GUIYANG_MAN


def test_corrections_for_two_swapped_digits_include_the_real_number() -> None:
    swapped = "520102199001011" + "32X"  # sequence 123 typed as 132

    assert codes(swapped) == [DefectCode.BAD_CHECK_DIGIT]
    assert GUIYANG_MAN in possible_corrections(swapped, today=TODAY)


def test_every_correction_is_a_valid_number() -> None:
    for candidate in possible_corrections("520102199001011231", today=TODAY):
        assert codes(candidate) == []


def test_no_corrections_for_a_valid_or_a_malformed_number() -> None:
    assert possible_corrections(GUIYANG_MAN, today=TODAY) == []
    assert possible_corrections("520102199001011", today=TODAY) == []
    assert possible_corrections("52010219900101123A", today=TODAY) == []


# -- Masking (api.md) ------------------------------------------------------------------------------


def test_mask_keeps_the_first_and_last_four_characters() -> None:
    assert mask(GUIYANG_MAN) == "5201**********123X"
    assert mask("52010219900101123x") == "5201**********123X"


def test_mask_of_a_legacy_number_shows_its_eighteen_digit_form() -> None:
    assert mask(GUIYANG_MAN_LEGACY) == "5201**********123X"


def test_mask_hides_a_short_number_entirely() -> None:
    assert mask("52010219") == "********"


def test_mask_name_keeps_the_first_character() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("张三") == "张*"
    assert mask_name("迪丽热巴·迪力木拉提") == "迪" + "*" * 9
    assert mask_name("张") == "*"
    assert mask_name("") == ""


def test_a_citizen_id_never_shows_the_full_number_in_logs() -> None:
    assert repr(parse(GUIYANG_MAN, today=TODAY)) == "CitizenId(5201**********123X)"

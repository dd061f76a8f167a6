"""A source row's text that the registry cannot keep as it is (canbao_contracts.text): the value
is cleaned or, holding a NUL or another control character, treated as absent; the person and
everyone else of the batch are built all the same."""

from __future__ import annotations

from datetime import date

from tests.identity.conftest import Harness, change

NUMBER = "110101198001010010"
OTHER = "110101198502020022"


def hukou(number: str, name: str, born: date, gender: str) -> dict[str, object]:
    return {
        "sfzh": number,
        "xm": name,
        "xb": gender,
        "csrq": born,
        "hjdz_xzqh": "110101",
        "hjdz": "北京市东城区\r\n东华门街道",
        "ryzt": "0",
    }


async def test_a_name_holding_a_nul_is_no_value_and_the_whole_batch_is_built(
    harness: Harness,
) -> None:
    """PostgreSQL refuses U+0000 in text and jsonb: a household register row whose name starts
    with one gives no name (the insurance system's is taken), never a rebuild that fails."""
    ac01 = {
        "aac001": "P1",
        "aac002": NUMBER,
        "aac003": "王伟",
        "aac004": "1",
        "aac006": "19800101",
        "aae005": "１３８００１３８０００",
    }
    await harness.apply(
        [
            change("hukou.person", hukou(NUMBER, "\x00王伟", date(1980, 1, 1), "1")),
            change("si_core.ac01", ac01),
            change("hukou.person", hukou(OTHER, "李娜", date(1985, 2, 2), "2")),
        ]
    )

    person, other = await harness.person_of(NUMBER), await harness.person_of(OTHER)
    assert person is not None and other is not None
    golden = (await harness.golden(person))["golden"]
    assert (golden["name"]["value"], golden["name"]["source"]) == ("王伟", "si_core.ac01")
    assert golden["phone"]["value"] == "13800138000", "full-width digits: one spelling"
    assert golden["household_place"]["value"] == "北京市东城区 东华门街道"
    assert (await harness.golden(other))["golden"]["name"]["value"] == "李娜"


async def test_a_person_whose_only_name_is_unreadable_is_built_with_the_name_missing(
    harness: Harness,
) -> None:
    await harness.apply([change("hukou.person", hukou(NUMBER, "王\x07伟", date(1980, 1, 1), "1"))])

    person = await harness.person_of(NUMBER)
    assert person is not None
    golden = await harness.golden(person)
    assert "name" not in golden["golden"] and "name" in golden["missing"]

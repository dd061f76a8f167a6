"""Source rows → canonical records, one adapter at a time (pure: no database)."""

from __future__ import annotations

from canbao_identity import records as r
from canbao_identity.adapters import adapter_for
from canbao_identity.records import FactDraft

PERMIT_ROW = {
    "jzzh": "JZ5201020001",
    "sfzh": "530102199202020629",
    "xm": "周强",
    "xb": "1",
    "csrq": 8067,
    "hjdz_xzqh": "530102",
    "jzdz_xzqh": "520102",
    "jzdz": "贵州省贵阳市南明区花果园街道15号",
    "qfrq": 19783,
    "yxqz": 21609,
    "zt": "1",
}  # fmt: skip  (dates as Debezium writes them: days since 1970-01-01)


def test_a_residence_permit_places_its_holder_where_they_live() -> None:
    """hukou.resident_permit (居住证): household registered elsewhere, living here: the region is
    the residence, the household region stays the other province's, the household type is
    non-local (AAC009 52), and the permit is a fact for matching's scope."""
    adapter = adapter_for("cdc.hukou.resident_permit")
    assert adapter is not None and not adapter.key_is_id_number  # keyed by the permit number

    record = adapter.to_record(PERMIT_ROW)

    assert record.source_table == "hukou.resident_permit"
    assert record.claims[r.REGION] == "520102"
    assert record.claims[r.HOUSEHOLD_REGION] == "530102"
    assert record.claims[r.HOUSEHOLD_TYPE] == "52"
    assert record.claims[r.RESIDENCE_ADDRESS] == "贵州省贵阳市南明区花果园街道15号"
    assert (record.claims[r.ID_NUMBER], record.claims[r.DOCUMENT_TYPE]) == (
        "530102199202020629",
        "01",
    )
    assert (record.claims[r.NAME], record.claims[r.BIRTH_DATE]) == ("周强", "1992-02-02")
    assert r.HOUSEHOLD_STATUS not in record.claims  # not the household register
    assert record.facts == (
        FactDraft(
            "residence_permit",
            {
                "status": "1",
                "region_code": "520102",
                "issued_on": "2024-03-01",
                "valid_until": "2029-03-01",
            },
        ),
    )


def test_a_permit_of_an_unknown_status_states_no_fact() -> None:
    adapter = adapter_for("cdc.hukou.resident_permit")
    assert adapter is not None
    assert adapter.to_record(PERMIT_ROW | {"zt": "9"}).facts == ()


def test_the_household_register_names_the_household_and_the_relation_to_its_head() -> None:
    """hukou.person hh (户号) and yhzgx (与户主关系), and hjdz as the household's address:
    claims (personal), for the household survey (domain.md §2.3)."""
    adapter = adapter_for("cdc.hukou.person")
    assert adapter is not None
    row = {
        "sfzh": "520102198001010011",
        "xm": "王伟",
        "xb": "1",
        "csrq": 3652,
        "hjdz_xzqh": "520102",
        "hjdz": "贵州省贵阳市南明区幸福路1号",
        "hh": " 520102000001",
        "yhzgx": "01",
        "ryzt": "0",
    }

    claims = adapter.to_record(row).claims

    assert claims[r.HOUSEHOLD_NUMBER] == "520102000001"
    assert claims[r.HOUSEHOLD_RELATION] == "01"
    assert claims[r.HOUSEHOLD_ADDRESS] == "贵州省贵阳市南明区幸福路1号"
    blank = adapter.to_record(row | {"hh": "  ", "yhzgx": None}).claims
    assert blank[r.HOUSEHOLD_NUMBER] is None and blank[r.HOUSEHOLD_RELATION] is None

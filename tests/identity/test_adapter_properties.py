"""Every source table's adapter, fed any row a change event can carry (any JSON value in any
column, columns missing): a source record, or MalformedChangeEvent naming the column, which the
consumer dead-letters with that reason (identity handlers.py). Never another exception."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canbao_contracts.debezium import MalformedChangeEvent
from canbao_contracts.events import UnitChanged
from canbao_identity.adapters import ADAPTERS, Adapter, si_core, values
from canbao_identity.records import SourceRecord
from tests.contracts.test_input_properties import JSON

# Every column of every simulated table (sources.md), so the adapters meet their own names.
COLUMNS = sorted(
    {
        "aab001",
        "aab003",
        "aab004",
        "aab019",
        "aab301",
        "aac001",
        "aac002",
        "aac003",
        "aac004",
        "aac006",
        "aac008",
        "aac009",
        "aac010",
        "aac012",
        "aac030",
        "aae005",
        "aae006",
        "aae030",
        "aae031",
        "aae116",
        "aae140",
        "aaz500",
        "bank",
        "begndate",
        "brdy",
        "byrq",
        "card_status",
        "certno",
        "cjrq",
        "csrq",
        "emp_no",
        "end_date",
        "enddate",
        "gend",
        "hh",
        "hjdz",
        "hjdz_xzqh",
        "id",
        "insu_admdvs",
        "insurance",
        "insutype",
        "issue_date",
        "jsrq",
        "jyxzqh",
        "jzdz",
        "jzdz_xzqh",
        "jzzh",
        "ksrq",
        "mz",
        "psn_cert_type",
        "psn_insu_stas",
        "psn_name",
        "psn_no",
        "qfrq",
        "region",
        "reported_at",
        "rjrq",
        "rxrq",
        "ryzt",
        "scope",
        "sfzh",
        "sfzjh",
        "start_date",
        "status",
        "swrq",
        "benefit",
        "updated_at",
        "xb",
        "xd",
        "xh",
        "xjzt",
        "xm",
        "xxmc",
        "xzqh",
        "yhzgx",
        "yxqz",
        "zt",
        "zxrq",
    }
)
ROWS = st.dictionaries(st.sampled_from(COLUMNS), JSON | st.integers(-(10**6), 10**6), max_size=20)


@pytest.mark.parametrize("adapter", ADAPTERS.values(), ids=list(ADAPTERS))
@given(row=ROWS)
def test_any_row_is_a_record_or_a_malformed_change_event(
    adapter: Adapter, row: dict[str, Any]
) -> None:
    try:
        record = adapter.to_record(row)
    except MalformedChangeEvent as error:
        assert error.reason
        return
    assert isinstance(record, SourceRecord)


@given(row=ROWS)
def test_any_unit_row_is_a_unit_the_contract_takes(row: dict[str, Any]) -> None:
    """si_core.ab01 is published as it is (units.py): whatever its columns hold, the unit's
    event validates, each value the contract refuses being unknown (None)."""
    unit = si_core.unit(row)
    UnitChanged(unit_id="U1", revision=1, **dataclasses.asdict(unit))


@given(value=st.text(alphabet="0123456789", min_size=8, max_size=8) | st.text(max_size=10))
def test_a_compact_birth_date_is_eight_digits_making_a_day(value: str) -> None:
    """ac01.aac006 (YYYYMMDD, sources.md), once read as text (NFKC: full-width digits are
    digits): eight digits that make a calendar day are that day, as strptime reads them;
    anything else is no date (a 7-digit "1990037" too, which strptime would read as 7 March)."""
    read = values.text({"aac006": value}, "aac006") or ""
    expected = None
    if len(read) == 8 and read.isascii() and read.isdigit():
        with contextlib.suppress(ValueError):  # not a calendar day
            expected = datetime.strptime(read, "%Y%m%d").date().isoformat()
    assert values.compact_day({"aac006": value}, "aac006") == expected
    assert values.compact_day({"aac006": "1990037"}, "aac006") is None

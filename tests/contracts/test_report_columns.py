"""The quarterly basic-data table's columns (domain.md §6): seventeen, named once, and the form's
groups cover each of them once, in the form's order."""

from __future__ import annotations

from canbao_contracts.report_columns import COLUMN_GROUPS_ZH, COLUMN_NAMES_ZH


def test_the_form_has_seventeen_columns_each_in_one_group_in_order() -> None:
    assert list(COLUMN_NAMES_ZH) == list(range(1, 18))
    grouped = [column for _, columns in COLUMN_GROUPS_ZH for column in columns]
    assert grouped == list(COLUMN_NAMES_ZH)
    assert COLUMN_NAMES_ZH[8] == "其中：已核实登记人数"
    # Each insurance's columns are in its own group, named as the columns are.
    for group, columns in COLUMN_GROUPS_ZH[3:]:
        assert all(COLUMN_NAMES_ZH[column].startswith(group) for column in columns), group

"""The columns of the quarterly basic-data table (全民参保登记基础数据情况表, 41号 attachment 3;
domain.md §6) as the form names and groups them: one source for every place that shows the
table — reporting's exports and the analyst's page the gateway serves — so that a column is
never named two ways.

Column numbers are the form's, 1 to 17. The groups are the form's two-level header: the
household population (1-2), registration (3-6), survey and verification (7-8), then one group
per insurance (pension 9-11, medical 12-14, work injury 15, unemployment 16, maternity 17).
"""

from __future__ import annotations

from typing import Final

COLUMN_NAMES_ZH: Final[dict[int, str]] = {
    1: "户籍人口数",
    2: "已获取户籍人口数据人数",
    3: "本地直接参保登记人数",
    4: "其中：非本地户籍人数",
    5: "省内跨地区参保登记人数",
    6: "省外参保登记人数",
    7: "需调查核实人数",
    8: "其中：已核实登记人数",
    9: "养老保险应参保未参保人数",
    10: "养老保险重复参保人数",
    11: "养老保险重复领取待遇人数",
    12: "医疗保险应参保未参保人数",
    13: "医疗保险重复参保人数",
    14: "医疗保险重复享受待遇人数",
    15: "工伤保险应参保未参保人数",
    16: "失业保险应参保未参保人数",
    17: "生育保险应参保未参保人数",
}
COLUMN_GROUPS_ZH: Final[tuple[tuple[str, tuple[int, ...]], ...]] = (
    ("户籍人口情况", (1, 2)),
    ("参保登记情况", (3, 4, 5, 6)),
    ("调查核实情况", (7, 8)),
    ("养老保险", (9, 10, 11)),
    ("医疗保险", (12, 13, 14)),
    ("工伤保险", (15,)),
    ("失业保险", (16,)),
    ("生育保险", (17,)),
)

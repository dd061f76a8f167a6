"""Employers (si_core.ab01): enterprises, government organs, public institutions, village and
residents' committees … with their unit types (AAB019, domain.md §4), unified social credit
codes and a size that decides how many of the population work there (a few large units, many
small ones, concentrated in the cities)."""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

from canbao_stack.simulators.divisions import (
    COUNTIES,
    SHORT_NAMES,
    STREETS,
    TOWNS,
    VILLAGES,
    County,
)
from canbao_stack.simulators.model import Unit
from canbao_stack.simulators.numbers import credit_code

PEOPLE_PER_UNIT: Final = 12
# (AAB019, weight)
_KINDS: Final = (
    ("10", 70), ("81", 8), ("30", 5), ("55", 5), ("56", 2), ("57", 1), ("50", 1), ("91", 3),
    ("70", 1), ("82", 0.5), ("83", 0.5), ("95", 2), ("96", 1),
)  # fmt: skip
_KIND_CUM: Final = tuple(accumulate(weight for _, weight in _KINDS))
_BRANDS: Final = [
    "黔盛",
    "筑城",
    "黔源",
    "山城",
    "乌江",
    "苗岭",
    "梵净",
    "红岩",
    "兴黔",
    "云贵",
    "夜郎",
    "黄果树",
    "百灵",
    "金筑",
    "黔丰",
]
_TRADES: Final = (
    "建筑工程有限公司", "商贸有限公司", "食品有限责任公司", "物流有限公司", "电子科技有限公司",
    "酒业有限公司", "矿业有限责任公司", "茶业有限公司", "房地产开发有限公司", "大数据科技有限公司",
    "餐饮管理有限公司", "汽车销售服务有限公司", "药业股份有限公司", "物业管理有限公司",
)  # fmt: skip
_ORGANS: Final = [
    "人力资源和社会保障局",
    "教育局",
    "财政局",
    "公安局",
    "民政局",
    "卫生健康局",
    "自然资源局",
]
_INSTITUTIONS: Final = [
    "人民医院",
    "第一中学",
    "第二小学",
    "疾病预防控制中心",
    "中医院",
    "职业技术学校",
    "图书馆",
]


@dataclass(slots=True)
class Units:
    """The population's employers and, per county, the cumulative weights to draw one."""

    all: list[Unit] = field(default_factory=list)
    by_county: dict[str, tuple[list[Unit], list[float]]] = field(default_factory=dict)

    def pick(self, rng: random.Random, county: County) -> Unit:
        units, cum = self.by_county.get(county.code) or self.by_county["*"]
        return units[bisect(cum, rng.random() * cum[-1])]


def make_units(seed: int, people: int) -> Units:
    """The employers of a population of `people`, reproducible from `seed`."""
    rng = random.Random(f"canbao-units:{seed}:{people}")
    county_cum = list(accumulate(c.weight * (0.3 + c.urban_share) for c in COUNTIES))
    units = Units()
    grouped: dict[str, tuple[list[Unit], list[float]]] = {}
    total = 0.0
    every: list[float] = []
    for index in range(max(50, people // PEOPLE_PER_UNIT)):
        county = COUNTIES[bisect(county_cum, rng.random() * county_cum[-1])]
        kind = _KINDS[bisect(_KIND_CUM, rng.random() * _KIND_CUM[-1])][0]
        number = f"{county.code}{seed:05d}{index:07d}"
        body = (seed % 1000) * 100_000 + index
        unit = Unit(number, credit_code(county.code, body, organ=kind == "30"), "", kind, county)
        unit.name = _name(rng, unit, index)
        size = min(rng.paretovariate(1.1), 300.0)  # employees, relative
        units.all.append(unit)
        members, cum = grouped.setdefault(county.code, ([], []))
        members.append(unit)
        cum.append((cum[-1] if cum else 0.0) + size)
        total += size
        every.append(total)
    units.by_county = grouped
    units.by_county["*"] = (units.all, every)
    return units


def _name(rng: random.Random, unit: Unit, index: int) -> str:
    county, kind = unit.county, unit.kind
    brand = _BRANDS[int(rng.random() * len(_BRANDS))]
    city = SHORT_NAMES[county.prefecture_code]
    if kind == "30":
        return county.name + _ORGANS[index % len(_ORGANS)]
    if kind in ("50", "55", "56", "57"):
        return f"{county.name}{_INSTITUTIONS[index % len(_INSTITUTIONS)]}"
    if kind == "95":
        town, village = TOWNS[index % len(TOWNS)], VILLAGES[index % len(VILLAGES)]
        return f"{county.name}{town}{village}村民委员会"
    if kind == "96":
        return f"{county.name}{STREETS[index % len(STREETS)]}社区居民委员会"
    if kind == "81":
        return f"{county.name}{brand}餐馆"
    if kind == "82":
        return f"贵州{brand}律师事务所"
    if kind == "83":
        return f"贵州{brand}会计师事务所"
    if kind == "91":
        return f"{city}{brand}培训学校"
    if kind == "70":
        return f"{city}{brand}行业协会"
    return f"{city}{brand}{_TRADES[int(rng.random() * len(_TRADES))]}"

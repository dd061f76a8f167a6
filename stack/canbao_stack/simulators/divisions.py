"""The simulated province: Guizhou (贵州省, GB/T 2260 code 52), its nine prefecture-level
divisions and a handful of real county-level divisions of each, plus the places outside the
province that non-local workers come from and that Guizhou's migrant workers are insured in.

Only codes that exist in GB/T 2260 (2023 edition) are used. Weights are the 7th census (2020)
populations in units of 10,000, so a generated population has Guizhou's proportions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PROVINCE_CODE: Final = "52"
PROVINCE_NAME: Final = "贵州省"


@dataclass(frozen=True, slots=True)
class County:
    code: str  # GB/T 2260, 6 digits
    name: str
    prefecture_code: str
    prefecture_name: str
    urban_share: float  # share of households with a non-agricultural (urban) registration
    weight: float  # population, in 10,000

    @property
    def full_name(self) -> str:
        """The household place (AAC010) as the registration form prints it."""
        return f"{PROVINCE_NAME}{self.prefecture_name}{self.name}"


# (prefecture code, name, population in 10,000; counties: code, name, urban share, share of
# the prefecture's population among the counties listed)
# fmt: off
_PREFECTURES: Final = (
    ("520100", "贵阳市", 599, (
        ("520102", "南明区", 0.92, 4), ("520103", "云岩区", 0.93, 4),
        ("520111", "花溪区", 0.62, 2), ("520113", "白云区", 0.70, 1),
        ("520115", "观山湖区", 0.85, 2), ("520181", "清镇市", 0.40, 2),
    )),
    ("520200", "六盘水市", 303, (
        ("520201", "钟山区", 0.78, 2), ("520203", "六枝特区", 0.28, 2),
        ("520281", "盘州市", 0.30, 4),
    )),
    ("520300", "遵义市", 661, (
        ("520302", "红花岗区", 0.80, 3), ("520303", "汇川区", 0.78, 3),
        ("520304", "播州区", 0.32, 3), ("520381", "赤水市", 0.40, 1),
        ("520382", "仁怀市", 0.42, 2), ("520328", "湄潭县", 0.28, 2),
    )),
    ("520400", "安顺市", 247, (
        ("520402", "西秀区", 0.48, 4), ("520403", "平坝区", 0.30, 2),
        ("520422", "普定县", 0.22, 2),
    )),
    ("520500", "毕节市", 690, (
        ("520502", "七星关区", 0.42, 4), ("520521", "大方县", 0.22, 2),
        ("520523", "金沙县", 0.25, 2), ("520524", "织金县", 0.20, 2),
        ("520526", "威宁彝族回族苗族自治县", 0.16, 3),
    )),
    ("520600", "铜仁市", 330, (
        ("520602", "碧江区", 0.70, 2), ("520603", "万山区", 0.45, 1),
        ("520624", "思南县", 0.20, 2), ("520628", "松桃苗族自治县", 0.18, 2),
    )),
    ("522300", "黔西南布依族苗族自治州", 305, (
        ("522301", "兴义市", 0.50, 4), ("522302", "兴仁市", 0.26, 2),
        ("522328", "安龙县", 0.22, 2),
    )),
    ("522600", "黔东南苗族侗族自治州", 376, (
        ("522601", "凯里市", 0.55, 3), ("522625", "镇远县", 0.22, 1),
        ("522631", "黎平县", 0.16, 2),
    )),
    ("522700", "黔南布依族苗族自治州", 349, (
        ("522701", "都匀市", 0.52, 3), ("522702", "福泉市", 0.35, 1),
        ("522722", "荔波县", 0.20, 1), ("522725", "瓮安县", 0.24, 2),
    )),
)
# fmt: on


def _counties() -> tuple[County, ...]:
    counties = []
    for prefecture_code, prefecture_name, population, members in _PREFECTURES:
        shares = sum(share for *_, share in members)
        for code, name, urban, share in members:
            weight = population * share / shares
            counties.append(County(code, name, prefecture_code, prefecture_name, urban, weight))
    return tuple(counties)


COUNTIES: Final = _counties()
COUNTY_BY_CODE: Final = {county.code: county for county in COUNTIES}
PREFECTURES: Final = {code: name for code, name, *_ in _PREFECTURES}
# How unit names abbreviate the prefectures (黔东南州, not the autonomous prefecture's full name).
SHORT_NAMES: Final = {
    "520100": "贵阳", "520200": "六盘水", "520300": "遵义", "520400": "安顺", "520500": "毕节",
    "520600": "铜仁", "522300": "黔西南州", "522600": "黔东南州", "522700": "黔南州",
}  # fmt: skip
CAPITAL: Final = tuple(c for c in COUNTIES if c.prefecture_code == "520100")


@dataclass(frozen=True, slots=True)
class Place:
    """A county-level division outside Guizhou."""

    code: str
    full_name: str


# Where Guizhou's non-local workers come from (neighbouring provinces), with weights.
HOMETOWNS: Final = (
    (Place("511321", "四川省南充市南部县"), 3),
    (Place("511322", "四川省南充市营山县"), 2),
    (Place("510104", "四川省成都市锦江区"), 1),
    (Place("500101", "重庆市万州区"), 3),
    (Place("500102", "重庆市涪陵区"), 2),
    (Place("430102", "湖南省长沙市芙蓉区"), 2),
    (Place("530102", "云南省昆明市五华区"), 2),
    (Place("450102", "广西壮族自治区南宁市兴宁区"), 2),
    (Place("360102", "江西省南昌市东湖区"), 1),
)
# Where Guizhou's migrant workers are insured outside the province (national comparison).
DESTINATIONS: Final = (
    ("440106", 3),  # 广州市天河区
    ("440305", 2),  # 深圳市南山区
    ("440304", 2),  # 深圳市福田区
    ("441900", 3),  # 东莞市
    ("330106", 2),  # 杭州市西湖区
    ("330782", 2),  # 义乌市
    ("350203", 1),  # 厦门市思明区
)

# Plausible street, township and village names for addresses (generic, not per county).
STREETS: Final = (
    "中华北路", "中华南路", "延安中路", "人民大道", "解放路", "公园路", "文化路", "建设路",
    "新华路", "北京路", "市府路", "花果园大街", "宝山北路", "遵义路", "富水南路", "民主路",
    "环城北路", "青年路", "湘江大道", "兴隆大道",
)  # fmt: skip
TOWNS: Final = (
    "城关镇", "新场镇", "龙场镇", "马场镇", "羊场镇", "兴隆镇", "石门乡", "大坝镇", "平坝镇",
    "茶店镇", "猫场镇", "牛场乡", "太平镇", "双河镇",
)  # fmt: skip
VILLAGES: Final = (
    "新寨村", "大坪村", "花园村", "平寨村", "坪上村", "岩脚村", "石板村", "桃子村", "水井村",
    "新民村", "团结村", "红岩村", "龙井村", "白岩村", "大湾村", "营盘村",
)  # fmt: skip

"""Chinese names as Guizhou's registers hold them: surnames by frequency (national ranking with
the province's own common surnames, 吴 龙 石 罗 田 潘, raised), given names of one or two
characters whose style follows the decade of birth, and the homophones a clerk may type instead
(王玮 for 王伟): the name variants one system's copy carries.
"""

from __future__ import annotations

import random
from bisect import bisect
from itertools import accumulate
from typing import Final

# (surname, relative frequency)
# fmt: off
_SURNAMES: Final = (
    ("王", 70), ("李", 68), ("张", 64), ("刘", 52), ("陈", 50), ("杨", 62), ("黄", 26),
    ("赵", 21), ("吴", 34), ("周", 18), ("徐", 12), ("孙", 11), ("马", 11), ("朱", 10),
    ("胡", 10), ("郭", 9), ("何", 13), ("林", 8), ("罗", 22), ("高", 8), ("郑", 7), ("梁", 6),
    ("谢", 7), ("宋", 6), ("唐", 8), ("许", 5), ("韩", 5), ("冯", 5), ("邓", 7), ("曹", 5),
    ("彭", 6), ("曾", 5), ("肖", 5), ("田", 12), ("董", 4), ("袁", 5), ("潘", 9), ("于", 3),
    ("蒋", 4), ("蔡", 3), ("余", 5), ("杜", 4), ("叶", 3), ("程", 3), ("苏", 3), ("魏", 3),
    ("吕", 3), ("丁", 3), ("任", 3), ("沈", 2), ("姚", 3), ("卢", 3), ("姜", 2), ("崔", 1),
    ("钟", 2), ("谭", 3), ("陆", 2), ("汪", 2), ("范", 2), ("金", 2), ("石", 11), ("廖", 3),
    ("贾", 2), ("夏", 2), ("韦", 6), ("付", 2), ("方", 2), ("白", 2), ("邹", 2), ("孟", 1),
    ("熊", 4), ("秦", 2), ("邱", 2), ("江", 2), ("尹", 2), ("薛", 1), ("闫", 1), ("段", 2),
    ("雷", 3), ("侯", 1), ("龙", 10), ("史", 1), ("陶", 2), ("黎", 2), ("贺", 2), ("顾", 1),
    ("毛", 2), ("郝", 1), ("龚", 2), ("邵", 1), ("万", 2), ("钱", 1), ("严", 1), ("覃", 2),
    ("武", 1), ("戴", 1), ("莫", 2), ("孔", 1), ("向", 3), ("汤", 1), ("欧阳", 1), ("令狐", 1),
)
# Given-name characters by sex and by the decade style of the birth year.
_MALE: Final = {
    "old": "国建明华军平德文志强明海忠福荣林贵成光富生发学正祥永庆云清",
    "mid": "伟强磊军勇杰涛斌超鹏浩刚辉波峰毅俊亮飞林华明宇兵龙江鑫",
    "new": "子轩浩然宇航梓豪俊熙宇泽睿博文涵一鸣思远逸晨皓轩天佑嘉懿",
}
_FEMALE: Final = {
    "old": "秀英桂兰玉珍凤芝琼香翠花春梅淑芬素珍金秀兰英莲秀芳桂芝",
    "mid": "芳丽娟敏静艳玲燕红霞琴雪梅丹萍婷倩莉洁颖慧娜琳晶",
    "new": "梓涵欣怡诗雨思琪雨欣紫萱一诺可馨语嫣梓萱佳怡若曦依诺",
}
# A character and the homophone a clerk types for it (the name variants of one system).
HOMOPHONES: Final = {
    "伟": "玮", "丽": "莉", "军": "君", "华": "桦", "明": "铭", "芳": "方", "静": "婧",
    "杰": "洁", "敏": "民", "燕": "艳", "红": "宏", "强": "蔷", "涛": "韬", "斌": "彬",
    "玲": "琳", "霞": "侠", "英": "瑛", "兰": "岚", "平": "萍", "林": "霖", "峰": "锋",
    "梅": "玫", "婷": "亭", "宇": "雨", "浩": "昊", "轩": "萱", "涵": "晗", "鹏": "朋",
    "刚": "钢", "辉": "晖", "波": "博", "俊": "骏", "亮": "靓", "飞": "菲", "龙": "隆",
}
FOREIGN_NAMES: Final = (
    "SMITH JOHN", "MUELLER ANNA", "NGUYEN VAN AN", "KIM MINJUN", "TANAKA YUKI", "GARCIA MARIA",
    "DUBOIS PIERRE", "ROSSI LUCA", "SILVA ANA", "IVANOV SERGEI", "KHAN AHMED", "LEE SOOYOUNG",
)
# fmt: on

SURNAMES: Final = tuple(name for name, _ in _SURNAMES)
SURNAME_CUM_WEIGHTS: Final = tuple(accumulate(weight for _, weight in _SURNAMES))


def given_name(rng: random.Random, male: bool, birth_year: int) -> str:
    """One or two characters in the style of the birth decade (old < 1970 ≤ mid < 1995 ≤ new)."""
    style = "old" if birth_year < 1970 else "mid" if birth_year < 1995 else "new"
    pool = (_MALE if male else _FEMALE)[style]
    if rng.random() < 0.2:
        return pool[int(rng.random() * len(pool))]
    return pool[int(rng.random() * len(pool))] + pool[int(rng.random() * len(pool))]


def surname(rng: random.Random) -> str:
    return SURNAMES[bisect(SURNAME_CUM_WEIGHTS, rng.random() * SURNAME_CUM_WEIGHTS[-1])]


def variant_of(name: str) -> str | None:
    """The same name with its last replaceable character swapped for a homophone, if any."""
    for position in range(len(name) - 1, 0, -1):
        homophone = HOMOPHONES.get(name[position])
        if homophone is not None:
            return name[:position] + homophone + name[position + 1 :]
    return None

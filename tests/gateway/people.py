"""Valid citizen ID numbers of chosen regions, for tests about who may see whom."""

from __future__ import annotations

from canbao_contracts.id_numbers import check_character

NANMING = "520102"  # 贵阳市南明区
YUNYAN = "520103"  # 贵阳市云岩区
ZUNYI_HONGHUAGANG = "520302"  # 遵义市红花岗区
KUNMING_WUHUA = "530102"  # 云南省昆明市五华区: outside the demo province


def citizen(region: str, birth: str = "19800101", sequence: str = "123") -> str:
    """An 18-digit number born in `region` (its check character computed)."""
    first17 = region + birth + sequence
    return first17 + check_character(first17)


def legacy_15(region: str, birth: str = "800101", sequence: str = "123") -> str:
    """A 15-digit number of the same person as citizen(region, "19" + birth, sequence)."""
    return region + birth + sequence

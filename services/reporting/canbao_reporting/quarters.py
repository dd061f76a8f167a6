"""Calendar quarters as the table is reported (domain.md §6: due by the 25th of the month after
each quarter). Our convention: a quarter runs in China Standard Time (UTC+8, the statistics
office's calendar), so 2026Q3 is [2026-07-01 00:00 +08:00, 2026-10-01 00:00 +08:00)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Self

CHINA: Final = timezone(timedelta(hours=8), "CST")
_QUARTER: Final = re.compile(r"^([1-9][0-9]{3})Q([1-4])$")  # year 0 has no calendar


@dataclass(frozen=True, slots=True, order=True)
class Quarter:
    year: int
    number: int  # 1-4

    @classmethod
    def parse(cls, text: str) -> Self | None:
        """`2026Q3` → Quarter(2026, 3); None for anything else."""
        match = _QUARTER.match(text)
        return None if match is None else cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, moment: datetime) -> Self:
        local = moment.astimezone(CHINA)
        return cls(local.year, (local.month - 1) // 3 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=CHINA)

    @property
    def end(self) -> datetime:
        """The first moment after the quarter (exclusive)."""
        if self.number == 4:
            return datetime(self.year + 1, 1, 1, tzinfo=CHINA)
        return datetime(self.year, 3 * self.number + 1, 1, tzinfo=CHINA)

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"

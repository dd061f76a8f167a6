"""Who staff are: their roles (api.md, "Who calls") and the region each one may see.

Pure domain: no database, no HTTP. A region scope is a GB/T 2260 code prefix: `52` is the whole
province of Guizhou, `5201` the city of Guiyang, `520102` the district of Nanming, and the longer
township (9 digits) and village/community (12 digits) codes of the grass-roots platforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

# Lengths of a GB/T 2260 prefix (province, city, county) and of the statistical division codes
# below a county (township 9, village/community 12) that grass-roots platforms are scoped to.
SCOPE_LENGTHS: Final = frozenset({2, 4, 6, 9, 12})


class Role(StrEnum):
    """The staff roles of api.md, plus three of ours: `reviewer`, who rechecks (复核) what a
    counter clerk collected (41号 表4: AAE014 on every record a clerk handles); `city`, who
    samples and re-checks the counties' approved records (Chongqing plan 四(二)); and `auditor`,
    the only role that may read the audit log, and one that reads no personal data itself, so
    that those who use the data and those who check its use are different people."""

    COUNTER = "counter"  # counter clerk (窗口经办): popups, collections
    SURVEYOR = "surveyor"  # household surveyor (调查员): its assigned survey tasks
    PLATFORM = "platform"  # grass-roots platform reviewer (基层平台): first review (初审)
    COUNTY = "county"  # county agency approver (县级经办): approval (审定)
    REVIEWER = "reviewer"  # second pair of eyes (复核人, AAE014) on counter collections
    CITY = "city"  # city agency (市级经办): sampling checks of its counties' reported data
    ANALYST = "analyst"  # reports and the people behind them
    AUDITOR = "auditor"  # reads the audit log


class InvalidScope(ValueError):
    """A region scope that is not a GB/T 2260 code or prefix."""


def normalise_scope(code: str) -> str:
    """The prefix a region code stands for: `520000` → `52`, `520100` → `5201`, `520102` stays.

    Six-digit codes name a province or a city with trailing zero pairs (GB/T 2260), and staff
    lists use them that way; the prefix is what the scope rule compares."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in SCOPE_LENGTHS:
        raise InvalidScope(f"not a GB/T 2260 division code: {code!r}")
    if len(code) == 6:
        code = code.removesuffix("0000") if code.endswith("0000") else code.removesuffix("00")
    return code


def covers(scope: str, region: str) -> bool:
    """Whether a member of staff scoped to `scope` may see a person of `region`.

    `region` is the person's household region (AAC010's division) or, when that is unknown, the
    first six digits of the ID number. A county-level region inside a township scope is not
    enough to place the person in that township, so a scope longer than the region covers
    nothing: township and village staff see a person only through a region that long. (Serving
    one person is another matter: auth.person_in_scope lets such a scope stand for its county.)"""
    return len(region) >= len(scope) and region.startswith(scope)


@dataclass(frozen=True, slots=True)
class Staff:
    """The member of staff a request acts for, as their access token states."""

    username: str
    role: Role
    scope: str  # normalised GB/T 2260 prefix

    def covers(self, region: str) -> bool:
        return covers(self.scope, region)


class Actor(Protocol):
    """Whoever a request acts for, as the audit log and the services' internal calls name them:
    a member of staff, a registered client (clients.py) or a citizen's session
    (self_service.py). `role` is the staff role, the client's kind, or `self`."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> StrEnum: ...

    @property
    def scope(self) -> str: ...

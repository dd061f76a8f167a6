"""The registry's search filter over people's verdicts (a partner's DCI search and subscription,
api.md "Partner departments"): one language, read by matching as SQL over its verdicts and by
the gateway against one verdict (is this change a subscriber's?), so that a subscription
notifies exactly about the people the same search would find.

`region` is compared by division: a city's code (520100) covers its counties (520102); every
other attribute by value. The insurances' attributes are the status codes of domain.md §4.
`household_registered_locally` is the verdict's (domain.md §6 column 1); `insured_in_province`
says that at least one insurance has a scheme code (an enrolment in the province's own systems)
or 81 (insured in another region of the province): what the province tells the national registry
(44号 Art.10) is its household-registered people without it and the others with it."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from canbao_contracts.codes import StatusCode

Attribute = Literal[
    "region",
    "gender",
    "birth_year",
    "registration",
    "deceased",
    "pension",
    "medical",
    "injury",
    "unemployment",
    "maternity",
    "household_registered_locally",
    "insured_in_province",
]
Comparison = Literal["eq", "in", "gt", "lt", "ge", "le"]
INSURANCE_ATTRIBUTES: Final = ("pension", "medical", "injury", "unemployment", "maternity")
INSURED_IN_PROVINCE_CODES: Final = tuple(
    code.value
    for code in StatusCode
    if code.insurance is not None or code is StatusCode.INSURED_ELSEWHERE_IN_PROVINCE
)


def insured_in_province(verdict: dict[str, Any]) -> bool | None:
    """Whether any insurance of `verdict` (a Verdict as JSON) has a code of
    INSURED_IN_PROVINCE_CODES; None for the dead (no statuses)."""
    if verdict.get("deceased"):
        return None
    codes = (verdict.get("statuses") or {}).values()
    return any(code in INSURED_IN_PROVINCE_CODES for code in codes)


class Condition(BaseModel):
    """`attribute` `cmp` `value`."""

    attribute: Attribute
    cmp: Comparison
    value: str | int | bool | list[str | int] | None


class Filter(BaseModel):
    """`all` of its parts, `any` of them, or `not` the first: nested as deep as a query is."""

    op: Literal["all", "any", "not"]
    parts: list[Condition | Filter] = Field(min_length=1, max_length=50)


def division_prefix(region: str) -> str:
    """The codes under a division share its code without the trailing zero pairs."""
    prefix = region
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


def names_a_region(node: Filter | Condition) -> bool:
    """Whether every way of satisfying the filter lies within a named division: a search of
    the whole province by gender alone would read every person (and say too much)."""
    if isinstance(node, Condition):
        return node.attribute == "region"
    if node.op == "all":
        return any(names_a_region(part) for part in node.parts)
    if node.op == "any":
        return all(names_a_region(part) for part in node.parts)
    return False


def matches(node: Filter | Condition, verdict: dict[str, Any]) -> bool:
    """Whether `verdict` (a Verdict as JSON) satisfies the filter, as matching's search would
    select it (a missing value satisfies no comparison)."""
    if isinstance(node, Filter):
        parts = [matches(part, verdict) for part in node.parts]
        if node.op == "all":
            return all(parts)
        if node.op == "any":
            return any(parts)
        return not parts[0]
    values = node.value if isinstance(node.value, list) else [node.value]
    if node.attribute == "region":
        region = verdict.get("region_code") or ""
        return any(region.startswith(division_prefix(str(v))) for v in values)
    if node.attribute in INSURANCE_ATTRIBUTES:
        actual = (verdict.get("statuses") or {}).get(node.attribute)
    elif node.attribute == "insured_in_province":
        actual = insured_in_province(verdict)
    else:
        actual = verdict.get(node.attribute)
    if actual is None:
        return False
    if node.cmp == "in":
        return actual in values
    value = node.value
    match node.cmp:
        case "eq":
            return bool(actual == value)
        case "gt":
            return bool(actual > value)
        case "lt":
            return bool(actual < value)
        case "ge":
            return bool(actual >= value)
        case _:
            return bool(actual <= value)

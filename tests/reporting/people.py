"""People as reporting receives them: verdicts built from a few facts a clerk would name."""

from __future__ import annotations

from typing import Any

from canbao_contracts.codes import FlagType, Gender, Insurance, RegistrationState, StatusCode
from canbao_contracts.events import Flag, Statuses, Verdict
from canbao_contracts.events.vocabulary import ComparisonScope

GUIYANG, ZUNYI = "520102", "520302"  # districts of 贵阳市 (5201) and 遵义市 (5203)
S = StatusCode
INSURED = Statuses(
    pension=S.RESIDENT_PENSION,
    medical=S.RESIDENT_MEDICAL,
    injury=S.NOT_REQUIRED,
    unemployment=S.NOT_REQUIRED,
    maternity=S.NOT_REQUIRED,
)
UNINSURED = INSURED.model_copy(
    update={"pension": S.UNINSURED_INDIVIDUAL, "medical": S.UNINSURED_INDIVIDUAL}
)


def verdict(**fields: Any) -> Verdict:
    """A living household-registered person of Guiyang, registered directly by the local
    systems; `fields` change what the scenario needs."""
    base: dict[str, Any] = dict(
        region_code=GUIYANG,
        birth_year=1990,
        gender=Gender.MALE,
        household_registered_locally=True,
        household_data_obtained=True,
        deceased=False,
        statuses=INSURED,
        flags=(),
        needs_survey=False,
        survey_reasons=(),
        registration=RegistrationState.CONFIRMED,
        confirmed_by=ComparisonScope.LOCAL,
    )
    return Verdict(**(base | fields))


def needing_survey(**fields: Any) -> Verdict:
    return verdict(
        **{
            "statuses": UNINSURED,
            "needs_survey": True,
            "survey_reasons": ("uninsured",),
            "confirmed_by": None,
            "registration": RegistrationState.NEEDS_SURVEY,
        }
        | fields
    )


def verified(**fields: Any) -> Verdict:
    return verdict(**{"registration": RegistrationState.VERIFIED, "confirmed_by": None} | fields)


def insured_elsewhere(scope: ComparisonScope, **fields: Any) -> Verdict:
    code = (
        S.INSURED_ELSEWHERE_IN_PROVINCE
        if scope is ComparisonScope.PROVINCE
        else (S.INSURED_IN_ANOTHER_PROVINCE)
    )
    statuses = INSURED.model_copy(update={"pension": code, "medical": code})
    return verdict(**{"statuses": statuses, "confirmed_by": scope} | fields)


def deceased(**fields: Any) -> Verdict:
    nothing = Statuses(pension=None, medical=None, injury=None, unemployment=None, maternity=None)
    return verdict(**{"deceased": True, "statuses": nothing} | fields)


def flagged(*flags: tuple[FlagType, Insurance], **fields: Any) -> Verdict:
    return verdict(flags=tuple(Flag(type=t, insurance=i) for t, i in flags), **fields)

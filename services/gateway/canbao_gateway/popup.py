"""The counter popup and the registration record (api.md), composed from what identity knows of a
person (golden record, missing and inaccurate items) and matching's verdict (statuses, flags,
survey reasons, registration). Pure: no HTTP, no database.

Personal data is masked for every role (api.md: "mask personal data for every role that does not
need it in clear"): no staff endpoint needs clear values yet. The clerk reads the inaccurate
item's reason, which never holds the values ("姓名与户籍登记不一致（社保系统）"), and asks the
person in front of them; clear values belong to the prefilled survey form (survey's, later).

Additive to api.md: `verdict_pending` (identity knows the person, matching has no verdict yet:
statuses and registration are null, `needs_survey` and `survey_reasons` say only what identity's
gaps prove), `in_scope` (false for a living person outside the registry's scope, e.g. moved out:
no statuses), `source` on an inaccurate item (the system whose record is at fault), and
`pending`: values collected at a counter that wait for their 复核 (survey's; masked), which the
registry does not hold yet (null when survey did not answer: the popup is identity's and
matching's, and answers without it).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel

from canbao_contracts.codes import RegistrationItem, RegistrationState, SurveyReason
from canbao_contracts.events.statuses import Flag, Statuses, Verdict
from canbao_contracts.id_numbers import mask, mask_name

# Golden-record fields that are codes or divisions, not personal data on their own: shown as
# they are. Every other field is masked, and one this module does not know is masked entirely.
CLEAR_FIELDS: Final = frozenset(
    {
        "document_type",
        "gender",
        "household_type",
        "personal_identity",
        "household_region_code",
        "region_code",
        "household_status",
        "employment_status",
    }
)
# Kept of an address: its division (省市区/县), never the street and house number; when no
# district or county ends within the first characters, the first six (省市), at most half.
DIVISION_PREFIX: Final = re.compile(r"^.{2,12}?[区县旗]")
ADDRESS_KEPT: Final = 6


class MissingItem(BaseModel):
    item: RegistrationItem
    code: str  # the indicator: AAE005
    label: str  # 联系电话


class InaccurateItem(MissingItem):
    reason: str
    """What is wrong and where, without the values: "姓名与户籍登记不一致（社保系统）"."""
    source: str | None = None
    """Additive: the system whose record is at fault (sources.md schema), when one is."""


class PendingValue(MissingItem):
    """A value collected at a counter, waiting for its 复核 (已提交，待复核)."""

    value: str  # masked
    collection_id: UUID
    state: str  # submitted
    submitted_at: datetime  # AAE036


class Popup(BaseModel):
    """api.md's popup, plus `verdict_pending`, `in_scope` and `pending`."""

    person_id: UUID
    id_number: str | None  # masked: 5201**********123X
    name: str | None  # masked: 张*
    deceased: bool
    statuses: Statuses | None  # null for a deceased person, and while the verdict is pending
    needs_survey: bool | None  # null only while pending and identity's gaps prove nothing
    survey_reasons: list[SurveyReason]
    missing: list[MissingItem]
    inaccurate: list[InaccurateItem]
    flags: list[Flag]
    registration: RegistrationState | None
    as_of: datetime
    verdict_pending: bool
    in_scope: bool | None  # null while the verdict is pending
    pending: list[PendingValue] | None = None  # null: survey did not answer


class RecordValue(BaseModel):
    """One field of the golden record and where it comes from (identity's provenance; the
    source's record key is left out: for the household register it is the ID number)."""

    value: Any  # masked unless a code or a division (CLEAR_FIELDS)
    source: str | None  # "hukou.person", "si_core.ac01", "collection.counter"…
    observed_at: str | None  # when the source committed it


class RegistrationRecord(Popup):
    """GET /api/v1/persons/{id_number}: the popup and the golden record with its provenance."""

    household_registered: bool
    identity_conflict: bool
    record: dict[str, RecordValue]


def popup_of(
    person: dict[str, Any],
    verdict: dict[str, Any] | None,
    *,
    id_number: str,
    now: datetime,
    pending: list[dict[str, Any]] | None = None,
) -> Popup:
    """`person` is identity's PersonRecord, `verdict` matching's PersonVerdict (None: pending);
    `id_number` the normalised number asked for, shown (masked) when identity holds none;
    `pending` survey's values waiting for 复核 (None: survey did not answer)."""
    golden = person["golden"]
    missing = [_item(RegistrationItem(name)) for name in person["missing"]]
    inaccurate = [
        InaccurateItem(
            **_item(RegistrationItem(g["item"])).model_dump(),
            reason=g["reason"],
            source=g.get("source"),
        )
        for g in person["inaccurate"]
    ]
    number, name = _value(golden, "id_number") or id_number, _value(golden, "name")
    common: dict[str, Any] = {
        "person_id": person["person_id"],
        "id_number": mask(number),
        "name": mask_name(name) if name else None,
        "missing": missing,
        "inaccurate": inaccurate,
        "pending": None if pending is None else [PendingValue(**p) for p in pending],
    }
    if verdict is None:
        reasons = _reasons_identity_proves(person)
        return Popup(
            **common,
            deceased=person["deceased"],
            statuses=None,
            # The dead need no survey; for the living, gaps prove a survey, none proves nothing.
            needs_survey=True if reasons else (False if person["deceased"] else None),
            survey_reasons=reasons,
            flags=[],
            registration=None,
            as_of=now,
            verdict_pending=True,
            in_scope=None,
        )
    found = Verdict.model_validate(verdict["verdict"]) if verdict["verdict"] else None
    as_of = verdict["as_of"] or now
    if found is None:  # alive, outside the registry's scope: no statuses to show
        return Popup(
            **common,
            deceased=False,
            statuses=None,
            needs_survey=False,
            survey_reasons=[],
            flags=[],
            registration=None,
            as_of=as_of,
            verdict_pending=False,
            in_scope=False,
        )
    return Popup(
        **common,
        deceased=found.deceased,
        statuses=None if found.deceased else found.statuses,
        needs_survey=found.needs_survey,
        survey_reasons=list(found.survey_reasons),
        flags=list(found.flags),
        registration=found.registration,
        as_of=as_of,
        verdict_pending=False,
        in_scope=bool(verdict["in_scope"]),
    )


def registration_record_of(
    person: dict[str, Any],
    verdict: dict[str, Any] | None,
    *,
    id_number: str,
    now: datetime,
    pending: list[dict[str, Any]] | None = None,
) -> RegistrationRecord:
    popup = popup_of(person, verdict, id_number=id_number, now=now, pending=pending)
    record = {
        field: RecordValue(
            value=masked(field, entry.get("value")),
            source=entry.get("source"),
            observed_at=entry.get("observed_at"),
        )
        for field, entry in sorted(person["golden"].items())
    }
    return RegistrationRecord(
        **popup.model_dump(),
        household_registered=person["household_registered"],
        identity_conflict=person["identity_conflict"],
        record=record,
    )


def masked(field: str, value: Any) -> Any:
    """A golden-record value as staff may see it."""
    if value is None or field in CLEAR_FIELDS:
        return value
    text = str(value)
    if field == "name":
        return mask_name(text)
    if field == "id_number":
        return mask(text)
    if field == "phone":  # 138****5678: enough to ask "is it still the one ending 5678?"
        return text[:3] + "*" * (len(text) - 7) + text[-4:] if len(text) > 7 else "*" * len(text)
    if field in ("birth_date", "death_date"):  # the year: the age the rules depend on
        return text[:4] + "-**-**"
    if field in ("residence_address", "household_place"):  # the sources give full addresses
        division = DIVISION_PREFIX.match(text)
        kept = division.group(0) if division else text[: min(ADDRESS_KEPT, len(text) // 2)]
        return kept + "****"
    return "****"


def _item(item: RegistrationItem) -> MissingItem:
    return MissingItem(item=item, code=item.code, label=item.label)


def _value(golden: dict[str, Any], field: str) -> str | None:
    entry = golden.get(field)
    return None if entry is None or not entry.get("value") else str(entry["value"])


def _reasons_identity_proves(person: dict[str, Any]) -> list[SurveyReason]:
    """Of domain.md §5's survey reasons, those identity's gaps prove on their own."""
    reasons: list[SurveyReason] = []
    if person["deceased"]:  # out of the scope of "should be insured": nothing to survey
        return reasons
    if person["missing"]:
        reasons.append(SurveyReason.MISSING_INFO)
    if person["inaccurate"]:
        reasons.append(SurveyReason.INACCURATE_INFO)
    if person["identity_conflict"]:
        reasons.append(SurveyReason.IDENTITY_CONFLICT)
    return reasons

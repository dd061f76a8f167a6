"""Resolution: which person a source record is about. Pure: the builder's resolution
(golden_records.py, `GoldenRecords.resolve`) does the look-ups this module asks for, for a whole
batch of staged changes at once, and hands back what it found.

* A valid citizen number (any form: 15 digits, lower-case x, spaces) or another valid document
  (medical.insured.psn_cert_type 02-04) is an identity: the record links *exactly* to the person
  holding it, or founds a new person.
* A citizen number that fails validation never merges silently: exactly one registered person
  with the same name, birth date and gender → linked as a *candidate* (the person gets an
  inaccurate_info item naming the source and the defect, see golden.py); none or several → the
  review queue, retried when a person with that demographic key appears.
* A row that names its person only through another row (si_core.ac02/ac60 → ac01 by AAC001)
  follows that row, or waits for it.
* One number carried by two people is decided in golden.py, from all the records of the number,
  so that the verdict does not depend on which record came first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final
from uuid import UUID

from canbao_contracts.codes import CertificateType
from canbao_contracts.id_numbers import validate
from canbao_identity import records as r
from canbao_identity.protection import Protector
from canbao_identity.records import SourceRecord

_DOCUMENT_TYPES = {c.value for c in CertificateType}


class LinkKind(StrEnum):
    EXACT = "exact"  # the same valid document number
    CANDIDATE = "candidate"  # invalid number, one person matches name + birth date + gender
    REFERENCE = "reference"  # through the row it names (ac02 → ac01)
    REVIEW = "review"  # waiting in the review queue for a clerk (or for its person to appear)
    WAITING = "waiting"  # waiting for the row it names
    NONE = "none"  # about no person (a record without claims)


class ReviewState(StrEnum):
    """Where a review-queue entry stands (review_queue.state)."""

    OPEN = "open"  # waiting for a clerk, or for its person to appear
    RESOLVED = "resolved"


class ReviewOutcome(StrEnum):
    """How a review-queue entry was closed (review_queue.resolution)."""

    LINKED = "linked"  # a clerk linked it to a registered person
    NEW_PERSON = "new_person"  # a clerk registered it as a new person
    AUTO_LINKED = "auto_linked"  # its one demographic match appeared: linked by the builder
    WITHDRAWN = "withdrawn"  # the source deleted the record
    SUPERSEDED = "superseded"  # the source corrected it: it resolved without review


# Who closed an entry no clerk closed (review_queue.resolved_by; a clerk's username otherwise).
CLOSED_BY_SOURCE: Final = "source"
CLOSED_BY_BUILDER: Final = "auto"


@dataclass(frozen=True)
class Identification:
    """What to look up for a record."""

    document_type: str | None = None
    number_index: str | None = None  # a valid document's blind index
    demographic_index: str | None = None  # for an invalid citizen number
    defects: tuple[str, ...] = ()  # DefectCode values of an invalid citizen number
    link_ref: str | None = None


@dataclass(frozen=True)
class Resolution:
    kind: LinkKind
    person_id: UUID | None = None  # None with NEW: the handler creates the person
    new_person: bool = False
    review_reason: str | None = None  # value-free, for the queue


def identify(
    record: SourceRecord, protector: Protector, *, today: date | None = None
) -> Identification:
    if record.link_ref is not None:
        return Identification(link_ref=record.link_ref)
    claims = record.claims
    if not claims:
        return Identification()  # about no person
    number, doc = claims.get(r.ID_NUMBER), claims.get(r.DOCUMENT_TYPE) or "01"
    if not number or doc not in _DOCUMENT_TYPES:
        return Identification(document_type=doc)
    if doc != CertificateType.CITIZEN_ID.value:
        return Identification(document_type=doc, number_index=protector.number_index(doc, number))
    defects = tuple(d.code.value for d in validate(number, today=today))
    if not defects:
        return Identification(document_type=doc, number_index=protector.number_index(doc, number))
    demographic = demographic_key(claims, number)
    index = protector.demographic_index(*demographic) if demographic else None
    return Identification(document_type=doc, demographic_index=index, defects=defects)


def demographic_key(
    claims: dict[str, str | None], number: str | None
) -> tuple[str, date, str] | None:
    """Name + birth date + gender: the record's own, else what the (invalid) number's digits say
    where they can be read (a wrong check character leaves them intact)."""
    name = claims.get(r.NAME)
    birth = _date(claims.get(r.BIRTH_DATE))
    gender = claims.get(r.GENDER)
    digits = "".join((number or "").split())
    if birth is None and len(digits) == 18 and digits[:17].isdigit():
        birth = _date(f"{digits[6:10]}-{digits[10:12]}-{digits[12:14]}")
    if gender not in ("1", "2") and len(digits) == 18 and digits[16].isdigit():
        gender = "1" if int(digits[16]) % 2 else "2"
    if not name or birth is None or gender not in ("1", "2"):
        return None
    return name, birth, gender


def decide(
    ident: Identification,
    *,
    number_owner: UUID | None = None,
    demographic_matches: tuple[UUID, ...] = (),
    reference_owner: UUID | None = None,
) -> Resolution:
    """The link, given who holds the number, who matches the demographic key (at most two
    needed), and whom the referenced row is linked to."""
    if ident.link_ref is not None:
        if reference_owner is None:
            return Resolution(LinkKind.WAITING)
        return Resolution(LinkKind.REFERENCE, reference_owner)
    if ident.number_index is not None:
        if number_owner is None:
            return Resolution(LinkKind.EXACT, new_person=True)
        return Resolution(LinkKind.EXACT, number_owner)
    if ident.defects:
        if len(demographic_matches) == 1:
            return Resolution(LinkKind.CANDIDATE, demographic_matches[0])
        found = "无人" if not demographic_matches else "多人"
        codes = "、".join(sorted(set(ident.defects)))
        return Resolution(
            LinkKind.REVIEW,
            review_reason=(f"公民身份号码有误（{codes}），按姓名、出生日期、性别匹配到{found}"),
        )
    if ident.document_type is None:
        return Resolution(LinkKind.NONE)
    return Resolution(LinkKind.REVIEW, review_reason="记录没有可识别的证件号码")


def _date(value: str | None) -> date | None:
    try:
        return None if not value else date.fromisoformat(value)
    except ValueError:
        return None

"""The household survey (入户调查, 44号 §15-19, domain.md §2.3) as a state machine, without database
or Kafka: what a task is, what a surveyor submits, how the review goes and what an approved
submission tells identity and matching.

A task is one person to survey, grouped with their household (户不漏人、人不漏项):

    open ──assign──► assigned ──submit──► submitted ──review: pass──► first_reviewed
      ▲                 ▲  ▲                  │                            │
      │                 │  └── review: reject ┘         approve: approve ──┴──► approved
      │                 └──────────────── approve: reject ─────────────────┘
      └── (any state but approved) ──► closed: the person no longer needs a survey, moved out,
                                        died, or was merged into another record

Maker-checker (domain.md §4, api.md "Survey"): nobody decides on a submission they made or
reviewed. The database enforces it (survey_0003's trigger on the decision ledger); `may_decide`
says the same for a clear answer before the insert.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from canbao_contracts.codes import (
    CertificateType,
    ChangeDocument,
    Insurance,
    LabelledCode,
    RegistrationItem,
    StatusCode,
    SurveyReason,
)
from canbao_contracts.events import CollectionApproved
from canbao_contracts.events.base import RegionCode
from canbao_contracts.events.collection import VerifiedStatus
from canbao_contracts.events.vocabulary import Channel


class TaskState(LabelledCode):
    OPEN = "open", "待分配"
    ASSIGNED = "assigned", "调查中"
    SUBMITTED = "submitted", "待初审"
    FIRST_REVIEWED = "first_reviewed", "待审定"
    APPROVED = "approved", "已审定"
    CLOSED = "closed", "已关闭"


# A task in these states still waits for someone: one per person (survey_0003's unique index).
OPEN_STATES: Final = frozenset(
    {TaskState.OPEN, TaskState.ASSIGNED, TaskState.SUBMITTED, TaskState.FIRST_REVIEWED}
)


class TaskChannel(StrEnum):
    SURVEY = "survey"  # a household survey list, or a person a team discovered
    SELF = "self"  # a correction a citizen made on a kiosk or the app (api.md "Self-service")
    CHANGE = "change"  # a change registration (变更登记) at the grass-roots platform (44号 Art.21)


class ClosedReason(LabelledCode):
    """Why a task closed without a survey (the list is kept current: 44号 §15)."""

    RESOLVED = "resolved", "已无需调查（已通过其他渠道采集或确认）"
    MOVED_OUT = "moved_out", "已迁出本辖区"
    DECEASED = "deceased", "已死亡"
    LEFT_SCOPE = "left_scope", "已不属于登记范围"
    MERGED = "merged", "记录已合并"


class Outcome(LabelledCode):
    """What the visit found (Yunnan plan: 查无此人 is a result too)."""

    COLLECTED = "collected", "已采集"
    VERIFIED = "verified", "核实未参保原因"
    NOT_FOUND = "not_found", "查无此人"


class Contact(LabelledCode):
    """How the surveyor reached the person: a visit, or by phone where the plan allows
    (Yunnan: 电话联系)."""

    VISIT = "visit", "入户"
    PHONE = "phone", "电话"
    SELF_SERVICE = "self", "自助"  # the person on a kiosk or the app: a self-service correction
    WALK_IN = "walk_in", "来访"  # the person at the grass-roots platform: a change registration


class Signatory(LabelledCode):
    """Who signed the 本人声明 of the registration form (44号 附件1)."""

    SELF = "self", "本人"
    GUARDIAN = "guardian", "监护人"
    AGENT = "agent", "指定代理人"


class Decision(StrEnum):
    PASS = "pass"  # 初审 passed
    APPROVE = "approve"  # 审定
    REJECT = "reject"  # back to the team, with a comment


class Stage(LabelledCode):
    FIRST_REVIEW = "review", "初审"  # the grass-roots platform (基层平台)
    APPROVAL = "approve", "审定"  # the county agency (县级经办)


# A verified reason for not being insured (domain.md §5 rule 4) or insurance elsewhere: what a
# survey may establish. Scheme codes come only from the business systems, 94 from their payments.
VERIFIABLE: Final = frozenset(
    {
        StatusCode("81"),
        StatusCode("82"),
        StatusCode("91"),
        StatusCode("92"),
        StatusCode("93"),
        StatusCode("95"),
    }
)
UNINSURED: Final = frozenset({StatusCode("91"), StatusCode("92")})
MAX_SIGNED_FORM_BYTES: Final = 2 * 1024 * 1024


class Declaration(BaseModel):
    """The 本人声明 of the registration form: who signed, when; an agent needs the person's written
    authorisation (书面授权), kept with the form."""

    model_config = ConfigDict(extra="forbid")

    signed_by: Signatory
    signed_on: date
    agent_authorised: bool = False

    @model_validator(mode="after")
    def _agent_has_authorisation(self) -> Self:
        if self.signed_by is Signatory.AGENT and not self.agent_authorised:
            raise ValueError("an agent signs only with the person's written authorisation")
        return self


class SignedForm(BaseModel):
    """A photo or scan of the signed form, the survey's evidence (sealed at rest)."""

    model_config = ConfigDict(extra="forbid")

    content_type: Literal["image/jpeg", "image/png", "application/pdf"]
    data: str = Field(max_length=(MAX_SIGNED_FORM_BYTES * 4) // 3 + 4)  # base64


_Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class SurveySubmission(BaseModel):
    """What a surveyor sends for one task (api.md "Survey"; made offline, synced late)."""

    model_config = ConfigDict(extra="forbid")

    client_id: UUID
    """Made by the app when the surveyor saves: the same submission synced twice is one."""
    visited_at: AwareDatetime
    contact: Contact = Contact.VISIT
    outcome: Outcome | None = None
    """Derived when absent: verified with a verified_reason, else collected."""
    items: dict[str, str] = Field(default={}, max_length=len(RegistrationItem))
    """Item name → collected value, as counter collections. PERSONAL DATA."""
    verified_reason: StatusCode | None = None
    """A reason for not being insured the visit verified (domain.md §5: 91, 92, 93, 95)."""
    insured_elsewhere: list[VerifiedStatus] = []
    """异地参保 per insurance: 81 in the province, 82 in another, with the region."""
    declaration: Declaration | None = None
    signed_form: SignedForm | None = None
    note: _Comment = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.outcome is None:
            self.outcome = Outcome.VERIFIED if self.verified_reason else Outcome.COLLECTED
        if self.verified_reason is not None and self.verified_reason not in UNINSURED | {
            StatusCode("93"),
            StatusCode("95"),
        }:
            raise ValueError("verified_reason is a reason for not being insured: 91, 92, 93 or 95")
        if self.outcome is Outcome.VERIFIED and self.verified_reason is None:
            raise ValueError("a verified outcome names its verified_reason")
        if self.outcome is Outcome.NOT_FOUND and (self.items or self.verified_reason):
            raise ValueError("a person not found at the address has nothing collected")
        if self.outcome is not Outcome.NOT_FOUND and self.declaration is None:
            raise ValueError("the registration form is signed: declaration (本人声明) is required")
        if len({s.insurance for s in self.insured_elsewhere}) != len(self.insured_elsewhere):
            raise ValueError("insured_elsewhere holds one status per insurance")
        for status in self.insured_elsewhere:
            if status.status not in (StatusCode("81"), StatusCode("82")):
                raise ValueError("insured_elsewhere holds 81 or 82 per insurance")
        return self

    def __repr__(self) -> str:  # the items are personal data: keep them out of logs
        return f"SurveySubmission(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


class Discovery(SurveySubmission):
    """A person found in the division whom the registry does not know (44号 §16: 新发现的人员
    补充到名单): a new registration, checked like the counter's."""

    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode


class SelfCorrection(BaseModel):
    """A correction a citizen made of their own record on a kiosk or the app (api.md
    "Self-service"): pending agency confirmation, as a task of channel self in state submitted,
    reviewed like a survey's (domain.md §2.2: confirmed by the agency before it updates)."""

    model_config = ConfigDict(extra="forbid")

    client_id: UUID
    person_id: UUID
    region_code: RegionCode
    origin: Literal["kiosk", "mobile"]
    items: dict[str, str] = Field(min_length=1, max_length=len(RegistrationItem))
    """PERSONAL DATA."""

    def __repr__(self) -> str:
        return f"SelfCorrection(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__

    def as_submission(self, at: datetime) -> SurveySubmission:
        """The person's own entry, declared by themself (本人)."""
        return SurveySubmission(
            client_id=self.client_id,
            visited_at=at,
            contact=Contact.SELF_SERVICE,
            items=self.items,
            declaration=Declaration(signed_by=Signatory.SELF, signed_on=at.date()),
        )


class ChangeRecord(SurveySubmission):
    """A change registration as survey keeps it, sealed (44号 Art.21): what was collected, with
    the documents the platform saw and the reason the person gave. Reviewed like a survey's."""

    documents: list[ChangeDocument] = Field(min_length=1, max_length=len(ChangeDocument))
    reason: _Comment = Field(min_length=1)

    def __repr__(self) -> str:
        return f"ChangeRecord(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


class ChangeRegistration(BaseModel):
    """A change a member of the grass-roots platform records for a registered person who came to
    the platform (变更登记, 44号 Art.5, Art.21): the gateway found the person in identity and
    checked the platform's division; survey records it as a task of channel change, submitted,
    for 初审 by another member of the platform and 审定 by the county."""

    model_config = ConfigDict(extra="forbid")

    client_id: UUID
    """Made by the client when the member saves: the same change sent twice is one."""
    person_id: UUID
    region_code: RegionCode
    """The person's county as identity knows it (the gateway's lookup)."""
    items: dict[str, str] = Field(min_length=1, max_length=len(RegistrationItem))
    """Item name → the changed value, as counter collections. PERSONAL DATA."""
    documents: list[ChangeDocument] = Field(min_length=1, max_length=len(ChangeDocument))
    """The documents seen (at least one): the change's evidence."""
    reason: _Comment = Field(min_length=1)
    """Why the registration changes, in the person's words (e.g. 更换手机号码)."""
    declaration: Declaration | None = None
    """Who signed the change form; absent: the person themself, on the day it is recorded."""

    def __repr__(self) -> str:
        return f"ChangeRegistration(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__

    def as_record(self, at: datetime) -> ChangeRecord:
        return ChangeRecord(
            client_id=self.client_id,
            visited_at=at,
            contact=Contact.WALK_IN,
            items=self.items,
            declaration=self.declaration
            or Declaration(signed_by=Signatory.SELF, signed_on=at.date()),
            documents=list(dict.fromkeys(self.documents)),
            reason=self.reason,
        )


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["pass", "approve", "reject"]
    comment: _Comment = ""

    @model_validator(mode="after")
    def _rejection_says_why(self) -> Self:
        if self.decision == "reject" and not self.comment:
            raise ValueError("a rejection says why (comment), for the team to act on")
        return self


def next_state(state: TaskState, stage: Stage, decision: Decision) -> TaskState | None:
    """The task's state after `decision` at `stage`, or None when the stage does not apply now."""
    if stage is Stage.FIRST_REVIEW and state is TaskState.SUBMITTED:
        return (
            TaskState.FIRST_REVIEWED
            if decision is Decision.PASS
            else (TaskState.ASSIGNED if decision is Decision.REJECT else None)
        )
    if stage is Stage.APPROVAL and state is TaskState.FIRST_REVIEWED:
        return (
            TaskState.APPROVED
            if decision is Decision.APPROVE
            else (TaskState.ASSIGNED if decision is Decision.REJECT else None)
        )
    return None


def may_decide(decider: str, *, submitted_by: str, decided_by: frozenset[str]) -> bool:
    """Maker-checker: not the submission's maker, nor anyone who already decided on it."""
    return decider != submitted_by and decider not in decided_by


def verified_statuses(
    submission: SurveySubmission, statuses: dict[str, str | None]
) -> tuple[VerifiedStatus, ...]:
    """What the survey established, per insurance: insurance elsewhere as the surveyor recorded
    it; a verified reason for every insurance the systems show uninsured (91, 92: the ones the
    person "should" be in), where it is not insured elsewhere."""
    elsewhere = {status.insurance: status for status in submission.insured_elsewhere}
    found = list(elsewhere.values())
    if submission.verified_reason is not None:
        for insurance in Insurance:
            code = statuses.get(insurance.value)
            if insurance not in elsewhere and code is not None and StatusCode(code) in UNINSURED:
                found.append(VerifiedStatus(insurance=insurance, status=submission.verified_reason))
    return tuple(sorted(found, key=lambda s: list(Insurance).index(s.insurance)))


def resolved_reasons(
    submission: SurveySubmission, reasons: tuple[SurveyReason, ...], verified: bool
) -> tuple[SurveyReason, ...]:
    """The task's survey reasons this approved submission settles (domain.md §5: "collection or
    survey removes the ones it resolves"). A visit resolves the data reasons when it collected;
    a verified reason settles the insurance reasons. Gaps left unfilled reappear from identity."""
    settled: set[SurveyReason] = set()
    if submission.outcome is Outcome.NOT_FOUND:
        return ()
    if submission.items:
        settled |= {
            SurveyReason.MISSING_INFO,
            SurveyReason.INACCURATE_INFO,
            SurveyReason.IDENTITY_CONFLICT,
        }
    if verified:
        settled |= {SurveyReason.UNINSURED, SurveyReason.PARTIALLY_INSURED}
    return tuple(reason for reason in SurveyReason if reason in reasons and reason in settled)


def approved_collection(
    submission: SurveySubmission,
    *,
    collection_id: UUID,
    person_id: UUID | None,
    items: dict[RegistrationItem, str],
    document_type: CertificateType,
    region_code: str | None,
    resolved: tuple[SurveyReason, ...],
    verified: tuple[VerifiedStatus, ...],
    handler: str,
    handled_at: datetime,
    first_reviewer: str,
    first_reviewed_at: datetime,
    reviewer: str,
    reviewed_at: datetime,
    channel: Channel = Channel.SURVEY,
) -> CollectionApproved:
    """The event of an approved submission (CollectionApproved; channel survey, or kiosk or
    mobile for a self-service correction): AAE011 the surveyor or the person's session, 初审 the
    platform, AAE014 the county."""
    return CollectionApproved(
        collection_id=collection_id,
        person_id=person_id,
        channel=channel,
        document_type=document_type,
        region_code=region_code,
        items=items,
        resolved_reasons=resolved,
        verified_statuses=verified,
        handler=handler,
        handled_at=handled_at,
        first_reviewer=first_reviewer,
        first_reviewed_at=first_reviewed_at,
        reviewer=reviewer,
        reviewed_at=reviewed_at,
    )

"""The household survey's public shapes (api.md "Survey"): what clients send, checked here so that
a malformed request never reaches survey, and what they get back, declared so that the OpenAPI
document says it (and tests/fuzz holds the gateway to it).

Requests forbid unknown fields; the rules that need the task (the team, maker-checker, the items
a new person needs) are survey's, and its answers pass on unchanged. Answers keep only the fields
declared here: a field survey adds reaches clients once it is declared, never by accident.
PERSONAL DATA: a submission's `items`, and a task's `prefill` (in clear for its team only).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from canbao_contracts.codes import CertificateType, ChangeDocument, RegistrationItem, SurveyReason
from canbao_contracts.events.base import RegionCode
from canbao_contracts.events.collection import VerifiedStatus
from canbao_gateway.popup import InaccurateItem, MissingItem

# Survey's task states (open → assigned → submitted → first_reviewed → approved; closed).
TaskStateName = Literal["open", "assigned", "submitted", "first_reviewed", "approved", "closed"]
# A GB/T 2260 division or prefix: 2 province, 4 city, 6 county (survey places people by county).
DivisionPrefix = Annotated[str, StringConstraints(pattern=r"^\d{2,6}$")]
Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
# The signed form's photo or scan (survey: at most 2 MiB), in base64.
SIGNED_FORM_BASE64: Final = (2 * 1024 * 1024 * 4) // 3 + 4


class ClientBody(BaseModel):
    """What a client sends: nothing but the declared fields."""

    model_config = ConfigDict(extra="forbid")


# -- Requests -------------------------------------------------------------------------------


class SurveyListRequest(ClientBody):
    region_code: DivisionPrefix
    """The division to list: a county (`520102`), or a city or the province."""


class Assignment(ClientBody):
    team: Annotated[list[Username], Field(min_length=1, max_length=3)]
    """1-3 surveyors on the county's roster (44号 §16: teams of 2-3)."""


class Declaration(ClientBody):
    """The 本人声明 of the registration form: who signed and when (an agent only with the person's
    written authorisation, 书面授权)."""

    signed_by: Literal["self", "guardian", "agent"]
    signed_on: date
    agent_authorised: bool = False


class SignedForm(ClientBody):
    content_type: Literal["image/jpeg", "image/png", "application/pdf"]
    data: Annotated[str, Field(max_length=SIGNED_FORM_BASE64)]
    """base64."""


class SurveySubmission(ClientBody):
    """What a surveyor sends for one task, made offline and synced late: idempotent by
    `client_id` (the same submission synced twice is one)."""

    client_id: UUID
    visited_at: AwareDatetime
    contact: Literal["visit", "phone"] = "visit"
    outcome: Literal["collected", "verified", "not_found"] | None = None
    """Derived when absent: `verified` with a verified_reason, else `collected`."""
    items: Annotated[dict[str, str], Field(max_length=len(RegistrationItem))] = {}
    """Item (`phone`, as counter collections) → collected value. PERSONAL DATA."""
    verified_reason: Literal["91", "92", "93", "95"] | None = None
    """A reason for not being insured the visit verified (domain.md §4, §5 rule 4)."""
    insured_elsewhere: Annotated[list[VerifiedStatus], Field(max_length=5)] = []
    """异地参保 per insurance: 81 in the province, 82 in another, with the region."""
    declaration: Declaration | None = None
    """Required unless the person was not found."""
    signed_form: SignedForm | None = None
    note: Comment = ""

    def __repr__(self) -> str:  # the items are personal data: keep them out of logs
        return f"{type(self).__name__}(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


class Discovery(SurveySubmission):
    """A person found in the division whom the registry does not know (44号 §16): a new
    registration, with every required item."""

    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode
    """Where they live (a county), inside the surveyor's region."""


class Review(ClientBody):
    decision: Literal["pass", "reject"]
    comment: Comment = ""
    """Required with a rejection: what the team is to fix."""


class Approval(ClientBody):
    decision: Literal["approve", "reject"]
    comment: Comment = ""
    """Required with a rejection."""


class Surveyor(ClientBody):
    """A surveyor on a county's roster (44号 Art.5, §16): trained and certified (调查证) by it."""

    username: Username
    """The staff account they log in with (role surveyor)."""
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    county_code: DivisionPrefix
    """The county that certified them; a shorter prefix puts them on every county's roster."""
    certificate_number: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{4,32}$")]
    contracted: bool = False
    """劳务派遣 or 购买服务 staff."""
    active: bool = True


# -- Answers --------------------------------------------------------------------------------


class ListCreated(BaseModel):
    list_id: UUID
    region_code: str
    tasks: int
    """New tasks: people of the division who need a survey and had no open task."""
    households: int
    residents: int
    """Household members identity listed (everyone of those households, surveyed or not)."""


class TaskPerson(BaseModel):
    person_id: UUID | None  # null: a person the registry does not know yet (a discovery)
    id_number: str | None  # masked: 5201**********123X
    name: str | None  # masked: 张*
    address: str | None  # down to the township or street: 贵州省贵阳市南明区中华南****


class TaskItem(BaseModel):
    task_id: UUID
    channel: Literal["survey", "self", "change"]
    """survey: a household survey; self: a citizen's own correction; change: a change
    registration (变更登记) at the grass-roots platform."""
    person: TaskPerson
    region_code: str
    household: str | None
    """An opaque key shared by the household's tasks (户不漏人)."""
    survey_reasons: list[SurveyReason]
    missing: list[MissingItem]
    inaccurate: list[InaccurateItem]
    state: TaskStateName
    state_label: str
    closed_reason: str | None
    closed_reason_label: str | None
    team: list[str]
    comment: str | None
    """The last rejection's comment, for the team."""
    version: int
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskItem]
    next: str | None
    """Pass as `cursor` for the next page; null on the last."""


class ItemValue(BaseModel):
    item: RegistrationItem
    code: str
    label: str
    value: str | None


class HouseholdMember(BaseModel):
    person_id: UUID
    relation: str | None
    name: str | None
    id_number: str | None
    complete: bool
    registration: str | None
    task_id: UUID | None
    task_state: str | None


class DecisionView(BaseModel):
    stage: Literal["review", "approve"]
    decision: Literal["pass", "approve", "reject"]
    decided_by: str
    decided_at: datetime
    comment: str


class DocumentSeen(BaseModel):
    code: ChangeDocument
    label: str


class SubmissionView(BaseModel):
    """The current submission, values masked (the reviewer's view), with its decisions."""

    submission_id: UUID
    submitted_by: str
    submitted_at: datetime
    visited_at: datetime
    contact: str
    outcome: str
    outcome_label: str
    verified_reason: str | None
    verified_reason_label: str | None
    insured_elsewhere: list[dict[str, Any]]
    declaration: dict[str, Any] | None
    note: str
    documents: list[DocumentSeen] = []
    """A change registration's evidence: the documents the platform saw."""
    reason: str | None = None
    """A change registration's reason."""
    items: list[ItemValue]
    decisions: list[DecisionView]
    state: str


class TaskDetail(TaskItem):
    """A task with what the visit needs: the prefilled form's values (in clear for the task's
    team, masked for reviewers), the household, and the current submission."""

    statuses: dict[str, str | None]
    prefill: list[ItemValue]
    household_members: list[HouseholdMember]
    submission: SubmissionView | None


class Assigned(BaseModel):
    task_id: UUID
    team: list[str]
    assigned: list[UUID]
    """Every waiting task of the household, now the team's."""


class SubmissionAccepted(BaseModel):
    task_id: UUID
    submission_id: UUID
    state: TaskStateName


class Decided(BaseModel):
    task_id: UUID
    state: TaskStateName


class RegionProgress(BaseModel):
    region_code: str
    needing_survey: int
    surveyed: int
    approved: int
    survey_rate: float | None


class TeamLoad(BaseModel):
    team: list[str]
    open_tasks: int


class Progress(BaseModel):
    division: str
    as_of: datetime
    needing_survey: int
    surveyed: int
    approved: int
    survey_rate: float | None
    """Surveyed ÷ needing a survey (Qinghai's target: 90 %)."""
    regions: list[RegionProgress]
    open_tasks_by_team: list[TeamLoad]


class RosterEntry(Surveyor):
    model_config = ConfigDict(extra="ignore")

    added_by: str
    added_at: datetime


class LedgerRow(BaseModel):
    household_number: str | None
    name: str
    id_number: str  # masked
    gender: str | None
    statuses: dict[str, str | None]
    survey_state: str
    outcome: str | None
    surveyors: str | None
    approved_at: date | None


class LedgerSummary(BaseModel):
    people: int
    needing_survey: int
    surveyed: int
    approved: int
    survey_rate: float | None


class Ledger(BaseModel):
    """The community ledger (全民参保登记个人信息汇总表, 44号 §19) as JSON."""

    division: str
    generated_at: datetime
    rows: list[LedgerRow]
    summary: LedgerSummary

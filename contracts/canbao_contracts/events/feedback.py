"""`feedback.<system>` and `feedback.<system>.replies`: write-back of approved changes to the
business systems that own the items (44号 Art.22: an insured person's change goes through the
business system's own procedure; 41号 §4: the business systems and the registry share the basic
information).

Identity asks (`FeedbackRequested`, one per collection and source record that disagrees with it)
and keeps showing the collected value, as collected, until the system's own record agrees; the
system answers (`FeedbackReplied`): applied (its change then arrives on its change feed like any
other) or refused, with a reason the agency sees in its list of write-backs.

PERSONAL DATA: `changes[].value` is the collected value in clear, for the business system to
apply. Hence the short retention of the topics (canbao_contracts.topics.FEEDBACK) and a repr
without values.
"""

from __future__ import annotations

from typing import Annotated, Self
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, StringConstraints, model_validator

from canbao_contracts.codes import LabelledCode, RegistrationItem
from canbao_contracts.events.base import ContractModel, Event
from canbao_contracts.events.collection import CollectedValue, StaffId
from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.topics import FEEDBACK, FEEDBACK_REPLIES, FEEDBACK_SYSTEMS, Topic


def _system(value: str) -> str:
    if value not in FEEDBACK_SYSTEMS:
        raise ValueError(f"is not a business system with a feedback topic ({FEEDBACK_SYSTEMS})")
    return value


FeedbackSystem = Annotated[str, AfterValidator(_system)]
_Column = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
_Table = _Column
_RecordKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class FeedbackChange(ContractModel):
    """One item to change in the system's record."""

    item: RegistrationItem
    column: _Column
    """The system's own column holding the item (sources.md), e.g. `aae005` for si_core's phone."""
    value: CollectedValue
    """PERSONAL DATA: the approved value, as collected (codes for gender; YYYYMMDD for a birth
    date, AAC006): the system writes it in its column's own type."""


class FeedbackOutcome(LabelledCode):
    APPLIED = "applied", "已更新"
    REFUSED = "refused", "未采纳"


class FeedbackRequested(Event):
    """An approved change for a business system to apply to its record of an insured person."""

    type = "cn.canbao.registry.feedback.requested.v1"

    feedback_id: UUID
    """The request's id (deterministic per collection and record: a re-sent request is the same
    request); the reply names it."""
    collection_id: UUID
    person_id: UUID
    system: FeedbackSystem
    table: _Table
    record_key: _RecordKey
    """The system's record (FactSource.record_key: `column=value` pairs of its primary key)."""
    changes: tuple[FeedbackChange, ...]
    channel: Channel
    """The evidence: where the change was collected (a counter, a survey, the platform…)."""
    handler: StaffId
    """AAE011: who collected it."""
    handled_at: AwareDatetime
    """AAE036."""
    first_reviewer: StaffId | None = None
    """初审 at the grass-roots platform, for the channels that have one."""
    reviewer: StaffId
    """AAE014: who approved it (审定 or 复核)."""
    reviewed_at: AwareDatetime
    """AAE015."""
    requested_at: AwareDatetime

    @classmethod
    def topics(cls) -> tuple[Topic, ...]:
        return tuple(FEEDBACK.values())

    @property
    def destination(self) -> Topic:
        return FEEDBACK[self.system]

    @property
    def subject(self) -> str:
        """The source record's key: one record's requests stay in order."""
        return self.record_key

    @model_validator(mode="after")
    def _what_and_who(self) -> Self:
        if not self.changes:
            raise ValueError("a feedback request changes at least one item")
        if len({c.item for c in self.changes}) != len(self.changes):
            raise ValueError("an item appears twice in changes")
        if self.reviewed_at < self.handled_at:
            raise ValueError("reviewed_at (AAE015) is before handled_at (AAE036)")
        return self

    def __repr__(self) -> str:  # keep the values out of logs and tracebacks
        items = ",".join(c.item.value for c in self.changes)
        return (
            f"FeedbackRequested(feedback_id={self.feedback_id}, system={self.system}, "
            f"items=<{items}>)"
        )

    __str__ = __repr__


class FeedbackReplied(Event):
    """A business system's answer to a feedback request: applied, or refused with the reason."""

    type = "cn.canbao.registry.feedback.replied.v1"

    feedback_id: UUID
    system: FeedbackSystem
    """Who answers: the system of the request (and of the replies topic it travels on)."""
    outcome: FeedbackOutcome
    reason: _Reason | None = None
    """Why the system could not apply it (required for `refused`), for the agency's list."""
    replied_at: AwareDatetime

    @classmethod
    def topics(cls) -> tuple[Topic, ...]:
        return tuple(FEEDBACK_REPLIES.values())

    @property
    def destination(self) -> Topic:
        return FEEDBACK_REPLIES[self.system]

    @property
    def subject(self) -> str:
        return str(self.feedback_id)

    @model_validator(mode="after")
    def _a_refusal_says_why(self) -> Self:
        if self.outcome is FeedbackOutcome.REFUSED and self.reason is None:
            raise ValueError("a refusal gives its reason")
        return self

    def __repr__(self) -> str:  # the reason may quote a value
        return f"FeedbackReplied(feedback_id={self.feedback_id}, outcome={self.outcome.value})"

    __str__ = __repr__

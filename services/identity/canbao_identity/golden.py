"""The golden record of a person and its gaps (domain.md §3), from all the person's current
source records. Pure and deterministic: the same records in any order give the same result, which
is what makes out-of-order and duplicated change events converge.

Precedence among the sources (our convention where the documents are silent): the household
register for name, gender, birth date, household place and status; the insurance and card systems
for phone and residence address. Within one source the newest change wins (highest position).

An approved collection (a clerk or surveyor checked the documents, domain.md §2.2; a second
person approved it, 44号 Art.13) against the source records claiming the same item
(`standing`, item by item, the newest collection of the person that claims it):

a. a source record that says what was collected (after normalisation: spaces, case, a phone's
   hyphens) takes over: the value shows that source again — the business system has caught up;
b. a source record changed after the collection was approved (its `changed_at` later than the
   collection's AAE015) and saying something else wins: the person changed it in the business
   system since, through that system's own procedure (44号 Art.22) — a malformed phone too,
   shown with its gap. Of several such records a well-formed one first, then the precedence
   above, as between sources without a collection;
c. an older source record saying something else loses, and so does a placeholder address
   however new (it says nothing changed): the collected value shows, as collected (source
   "collection", with its handler and reviewer), and the business systems among those records
   (topics.FEEDBACK_SYSTEMS) are listed as awaiting write-back (golden_records.py asks them).

Without a collection, a well-formed phone answers before a malformed one whatever their
sources; a malformed phone of a source ranked above the one shown is an inaccurate item of its
system all the same. A birth date or gender disagreeing with the citizen number shown is an
inaccurate item of the source that gave it (domain.md §3).

Identity items (name, gender, birth date, household place) follow the same rule: the collection
saw the documents, but a later change in the household register is later evidence. A record's
time is when its source committed the change (Debezium's source.ts_ms), or for a snapshot read
the row's updated_at — never the time of the read (handlers.changed_at).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Final, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from canbao_contracts.codes import SOURCE_LABELS, RegistrationItem, SourceSystem
from canbao_contracts.id_numbers import normalise, validate
from canbao_contracts.topics import FEEDBACK_SYSTEMS
from canbao_identity import records as r
from canbao_identity.protection import person_context
from canbao_identity.records import FactDraft
from canbao_identity.resolution import LinkKind

if TYPE_CHECKING:
    from canbao_identity.protection import Protector

# A mobile number 1[3-9] + 9 digits, or a landline 0 + 2-3 digit area code + 7-8 digits
# (our convention, shared with the simulators' ground truth).
VALID_PHONE: Final = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}")
# What a clerk types when the address is unknown: no value (our convention).
ADDRESS_PLACEHOLDERS: Final = frozenset({"不详", "无", "暂无", "-", "/"})
# Public security's residence permits (hukou.resident_permit) right after its household register:
# the same department checks the same documents.
PERMIT: Final = "hukou.resident_permit"
_IDENTITY: Final = (
    SourceSystem.COLLECTION,
    "hukou.person",
    PERMIT,
    "si_core.ac01",
    "medical.insured",
)
_PRECEDENCE: Final[dict[str, tuple[str, ...]]] = {
    r.NAME: _IDENTITY,
    r.GENDER: _IDENTITY,
    r.BIRTH_DATE: _IDENTITY,
    r.HOUSEHOLD_PLACE: (SourceSystem.COLLECTION, "hukou.person", "si_core.ac01"),
    # A permit: registered elsewhere.
    r.HOUSEHOLD_REGION: (SourceSystem.COLLECTION, "hukou.person", PERMIT),
    r.HOUSEHOLD_STATUS: ("hukou.person",),
    # The household as public security registers it, and nobody else: the survey visits it
    # (domain.md §2.3). A counter or a surveyor does not change a household register.
    r.HOUSEHOLD_NUMBER: ("hukou.person",),
    r.HOUSEHOLD_RELATION: ("hukou.person",),
    r.HOUSEHOLD_ADDRESS: ("hukou.person",),
    r.PHONE: (SourceSystem.COLLECTION, "si_core.ac01", "card.card_holder"),
    r.RESIDENCE_ADDRESS: (SourceSystem.COLLECTION, "si_core.ac01", PERMIT, "hukou.person"),
    r.HOUSEHOLD_TYPE: (SourceSystem.COLLECTION, "si_core.ac01", PERMIT),
    r.PERSONAL_IDENTITY: (SourceSystem.COLLECTION, "si_core.ac01"),
    # Where insured, else where a residence permit says they live, else (a newcomer) where they
    # registered at a counter. The household region counts instead for the locally registered
    # (publication.py).
    r.REGION: ("si_core.ac01", "medical.insured", PERMIT, SourceSystem.COLLECTION),
    r.DEATH_DATE: ("civil.cremation", "hukou.person"),
}
# The required items (RegistrationItem.required: domain.md §4's Y column and the phone) that a
# golden record without a value of theirs lacks.
_REQUIRED: Final = {item: claim for item, claim in r.CLAIMED_ITEMS.items() if item.required}
_COLLECTION: Final = SourceSystem.COLLECTION.value


@dataclass(frozen=True)
class LinkedRecord:
    """A current (not deleted) source record linked to the person, claims decrypted."""

    source_table: str  # "si_core.ac01"; "collection.<channel>" for an approved collection
    record_key: str
    link_kind: LinkKind
    position: int
    observed_at: str | None  # ISO time the source committed it
    claims: dict[str, Any]
    facts: tuple[FactDraft, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)  # a collection's handler, reviewer
    # When the source last changed it (a collection: when approved, AAE015); None: unknown, older
    # than any collection (handlers.changed_at).
    changed_at: datetime | None = None

    @cached_property
    def system(self) -> str:
        return self.source_table.split(".")[0]


@dataclass(frozen=True)
class Gap:
    """An inaccurate item: `reason` is value-free (it travels in events); `detail` is for the
    clerk through identity's API, values included."""

    item: RegistrationItem
    source: str | None
    reason: str
    detail: str


@dataclass(frozen=True)
class Golden:
    values: dict[str, dict[str, Any]]  # field → {"value", "source", "record_key", "observed_at"}
    missing: tuple[RegistrationItem, ...]
    inaccurate: tuple[Gap, ...]
    identity_conflict: bool
    conflicting: frozenset[tuple[str, str]]  # (source_table, record_key): another person's
    deceased: bool
    household_registered: bool
    contributing: tuple[LinkedRecord, ...]  # whose facts are the person's

    def value(self, name: str) -> Any:
        entry = self.values.get(name)
        return None if entry is None else entry["value"]


class GoldenDocument(BaseModel):
    """A golden record as identity keeps it, sealed under its person (persons.golden_ciphertext):
    what identity's API answers from (routes.py, partner_routes.py) and what the next rebuild
    compares with (history.py). Values in clear once opened: never logged, masked by the
    gateway."""

    model_config = ConfigDict(frozen=True)

    values: dict[str, dict[str, Any]]  # as Golden.values
    missing: tuple[RegistrationItem, ...] = ()
    inaccurate: tuple[Gap, ...] = ()
    identity_conflict: bool = False
    conflicting_records: tuple[str, ...] = ()  # "source_table|record_key"
    deceased: bool = False
    household_registered: bool = False

    @classmethod
    def of(cls, golden: Golden) -> Self:
        return cls(
            values=golden.values,
            missing=golden.missing,
            inaccurate=golden.inaccurate,
            identity_conflict=golden.identity_conflict,
            conflicting_records=tuple(sorted(f"{t}|{k}" for t, k in golden.conflicting)),
            deceased=golden.deceased,
            household_registered=golden.household_registered,
        )

    def value(self, name: str) -> Any:
        entry = self.values.get(name)
        return None if entry is None else entry["value"]

    def sealed(self, protector: Protector, person_id: UUID) -> bytes:
        return protector.encrypt(self, context=person_context(person_id))

    @classmethod
    def opened(cls, protector: Protector, person_id: UUID, blob: bytes, key_id: str) -> Self:
        return cls.model_validate(
            protector.decrypt(blob, key_id=key_id, context=person_context(person_id))
        )


def golden_record(records: Sequence[LinkedRecord]) -> Golden:
    ordered = sorted(records, key=lambda x: (x.source_table, x.record_key))
    reference = _reference(ordered)
    conflicting = frozenset(
        (x.source_table, x.record_key) for x in ordered if _conflicts(x, reference)
    )
    mine = tuple(x for x in ordered if (x.source_table, x.record_key) not in conflicting)
    claiming = _claiming(mine)
    values = {
        name: v
        for name in _PRECEDENCE
        if name in claiming and (v := _pick(claiming[name], name)) is not None
    }
    # Items a source changed since the collection: the collection no longer answers for them.
    changed_since = {name for name, v in values.items() if v.get("changed_since_collection")}
    if (employment := _employment(mine)) is not None:
        values[r.EMPLOYMENT_STATUS] = employment
    if (number := _pick_number(mine)) is not None:
        values[r.ID_NUMBER], values[r.DOCUMENT_TYPE] = number
    hukou = [x for x in mine if x.source_table == "hukou.person"]
    deceased = any(x.source_table == "civil.cremation" for x in mine) or any(
        x.claims.get(r.HOUSEHOLD_STATUS) == "1" for x in hukou
    )
    if not deceased:
        values.pop(r.DEATH_DATE, None)
    collected = {
        k
        for x in mine
        if x.system == SourceSystem.COLLECTION
        for k, v in x.claims.items()
        if v and k not in changed_since
    }
    inaccurate = [
        g for g in _inaccurate(mine, values, reference) if r.CLAIMED_ITEMS[g.item] not in collected
    ]
    return Golden(
        values=values,
        missing=tuple(item for item, name in _REQUIRED.items() if name not in values),
        # One item per source and defect: two job registrations with the same mistyped copy are
        # one thing for the clerk to correct.
        inaccurate=tuple(
            sorted(set(inaccurate), key=lambda g: (g.item.value, g.source or "", g.detail))
        ),
        identity_conflict=bool(conflicting),
        conflicting=conflicting,
        deceased=deceased,
        household_registered=bool(hukou),
        contributing=mine,
    )


class _TableRanks(dict[str, int | None]):
    """A source table's place in an order, which names tables ("hukou.person") and systems
    ("collection"): the better of the two, None when neither is there. Worked out the first time
    the table is met (a handful of tables): looked up for every record and item of every
    rebuild."""

    def __init__(self, order: tuple[str, ...]) -> None:
        super().__init__()
        self._ranks = {source: rank for rank, source in reversed(list(enumerate(order)))}

    def __missing__(self, table: str) -> int | None:
        by_table, by_system = self._ranks.get(table), self._ranks.get(table.split(".")[0])
        if by_table is None or (by_system is not None and by_system < by_table):
            by_table = by_system
        self[table] = by_table
        return by_table


@cache
def _table_ranks(order: tuple[str, ...]) -> _TableRanks:
    return _TableRanks(order)


_ITEM_RANKS: Final = {name: _table_ranks(order) for name, order in _PRECEDENCE.items()}


class Standing(StrEnum):
    """A source record's value of an item against the person's newest collection of it."""

    AGREES = "agrees"  # (a) says what was collected: the source takes over
    CHANGED_SINCE = "changed_since"  # (b) changed after the approval, to something else: it wins
    AWAITS_WRITE_BACK = "awaits_write_back"  # (c) older, something else: the collection wins


def standing(collection: LinkedRecord, source: LinkedRecord, name: str) -> Standing | None:
    """Where `source` stands against `collection` on item `name` (the module's rule a-c); None
    when one of them does not claim it."""
    collected, value = collection.claims.get(name), source.claims.get(name)
    if not _usable(name, collected) or value is None or value == "":
        return None
    if not _usable(name, value):  # a placeholder address says nothing changed: the collection
        return Standing.AWAITS_WRITE_BACK  # corrects it, and the system is asked to
    if same_value(name, collected, value):
        return Standing.AGREES
    # A malformed phone is a value like any other here: changed since the approval, it is the
    # person's change all the same, shown with its format gap (never overwritten by write-back).
    approved, changed = collection.changed_at, source.changed_at
    if approved is not None and changed is not None and changed > approved:
        return Standing.CHANGED_SINCE
    return Standing.AWAITS_WRITE_BACK


def same_value(name: str, a: Any, b: Any) -> bool:
    """Whether two values of item `name` are the same once normalised: spaces and case do not
    count (a name typed with a space, a lower-case x), nor a phone's hyphens."""
    return _normal(name, a) == _normal(name, b)


def _normal(name: str, value: Any) -> str:
    text = "".join(str(value).split()).upper()
    return text.replace("-", "") if name == r.PHONE else text


_Claim = tuple[int, LinkedRecord, Any]  # the source's rank for the item, the record, its value


def _claiming(records: Sequence[LinkedRecord]) -> dict[str, list[_Claim]]:
    """Per item of the precedence table, the records that say something of it (a placeholder
    too: a collection corrects it) from a source that answers for it, in the records' order. One
    pass over each record's claims, rather than one look into every record per item."""
    claiming: dict[str, list[_Claim]] = {}
    for x in records:
        if x.link_kind is LinkKind.CANDIDATE:
            continue
        for name, value in x.claims.items():
            if value is None or value == "" or (ranks := _ITEM_RANKS.get(name)) is None:
                continue
            if (rank := ranks[x.source_table]) is not None:
                claiming.setdefault(name, []).append((rank, x, value))
    return claiming


def _pick(claiming: list[_Claim], name: str) -> dict[str, Any] | None:
    """The value of item `name` among the records `claiming` it (`_claiming`)."""
    order = _PRECEDENCE[name]
    # A well-formed value before a malformed one (a phone), then precedence, then the newest.
    ranked = [
        (not _of_form(name, value), rank, -x.position, x.source_table, x.record_key, x)
        for rank, x, value in claiming
        if _usable(name, value)
    ]
    if not ranked:
        return None
    if len(ranked) > 1:
        ranked.sort(key=_first_five)
    collections = [v[-1] for v in ranked if v[-1].system == _COLLECTION]
    # The region: a collection only as a fallback.
    if not collections or order[0] != SourceSystem.COLLECTION:
        best = ranked[0][-1]
        return _provenance(best, best.claims[name])
    collection = max(collections, key=lambda x: (x.position, x.record_key))  # the newest
    sources = [v[-1] for v in ranked if v[-1].system != _COLLECTION]
    stands = {(x.source_table, x.record_key): standing(collection, x, name) for x in sources}
    for wanted in (Standing.CHANGED_SINCE, Standing.AGREES):
        # The best ranked record of the kind (ranked is in precedence order).
        winner = next(
            (x for x in sources if stands[(x.source_table, x.record_key)] is wanted), None
        )
        if winner is not None:
            entry = _provenance(winner, winner.claims[name])
            if wanted is Standing.CHANGED_SINCE:
                entry["changed_since_collection"] = collection.record_key
            return entry
    entry = _provenance(collection, collection.claims[name])
    # Every business system the collection corrects, a placeholder's among them (no value to
    # rank, but a wrong one to write back).
    awaiting = sorted(
        {
            x.source_table
            for _, x, _ in claiming
            if x.system in FEEDBACK_SYSTEMS
            and standing(collection, x, name) is Standing.AWAITS_WRITE_BACK
        }
    )
    if awaiting:
        entry["awaiting_write_back"] = awaiting
    return entry


def _pick_number(records: Sequence[LinkedRecord]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The person's document: a valid citizen number first (normalised), else another document."""
    ranks = _table_ranks(_IDENTITY)
    valid = []
    defective: dict[str, bool] = {}  # a person's records mostly carry one number: check it once
    for x in records:
        number, doc = x.claims.get(r.ID_NUMBER), x.claims.get(r.DOCUMENT_TYPE) or "01"
        if not number:
            continue
        if doc == "01":
            if number not in defective:
                defective[number] = bool(validate(number))
            if defective[number]:
                continue
        rank = ranks[x.source_table]
        valid.append((doc != "01", 99 if rank is None else rank, -x.position, x.record_key, x, doc))
    if not valid:
        return None
    *_, x, doc = min(valid, key=lambda v: v[:4])
    number = x.claims[r.ID_NUMBER]
    number = normalise(number) if doc == "01" else "".join(number.split()).upper()
    return _provenance(x, number), _provenance(x, doc)


def _employment(records: Sequence[LinkedRecord]) -> dict[str, Any] | None:
    """The registration form's employment status (经办规程 attachment 1), from the facts the
    sources state (our convention for the order): employed by a unit when an employment
    registration is open, else when a unit pays an enrolment for him; else a student while
    enrolled; else retired while a pension is paid. None when no source says (the form's
    "other" is for a clerk or a survey to record)."""
    found: list[tuple[int, int, str, str, LinkedRecord, dict[str, Any]]] = []
    for x in records:
        for fact in x.facts:
            f, rank, value = fact.fields, None, None
            if fact.kind == "employment" and not f.get("ended_on"):
                rank = 0
                value = {
                    "status": "employed",
                    "unit_id": f.get("unit_id"),
                    "unit_name": f.get("unit_name"),
                }
            elif fact.kind == "enrolment" and f.get("unit_id") and f.get("state") == "paying":
                rank, value = 1, {"status": "employed", "unit_id": f["unit_id"], "unit_name": None}
            elif fact.kind == "study" and f.get("state") == "1":
                rank, value = 2, {"status": "student", "unit_id": None, "unit_name": None}
            elif (
                fact.kind == "benefit" and f.get("insurance") == "pension" and f.get("state") == "1"
            ):
                rank, value = 3, {"status": "retired", "unit_id": None, "unit_name": None}
            if rank is not None and value is not None:
                found.append((rank, -x.position, x.source_table, x.record_key, x, value))
    if not found:
        return None
    *_, x, value = min(found, key=lambda v: v[:4])
    return _provenance(x, value)


def _provenance(x: LinkedRecord, value: Any) -> dict[str, Any]:
    entry = {
        "value": value,
        "source": x.source_table,
        "record_key": x.record_key,
        "observed_at": x.observed_at,
    }
    if x.provenance:
        entry["collection"] = x.provenance
    return entry


def _usable(name: str, value: Any) -> bool:
    """Whether `value` is a value at all: not empty, not an address placeholder."""
    if value is None or value == "":
        return False
    if name == r.RESIDENCE_ADDRESS:
        return str(value).strip() not in ADDRESS_PLACEHOLDERS
    return True


def _well_formed(name: str, value: Any) -> bool:
    """A value, and of the item's form: a phone VALID_PHONE accepts (domain.md §5: a malformed
    phone is an inaccurate item)."""
    return _usable(name, value) and _of_form(name, value)


def _of_form(name: str, value: Any) -> bool:
    """A usable value of the item's form (`_well_formed` once `_usable`)."""
    return name != r.PHONE or VALID_PHONE.fullmatch(str(value)) is not None


def _first_five(ranked: tuple[Any, ...]) -> tuple[Any, ...]:
    return ranked[:5]


def _reference(records: Sequence[LinkedRecord]) -> LinkedRecord | None:
    """Whose name and birth date the number belongs to: the household register, else the
    highest-precedence identity source (deterministic: by source, then key)."""
    ranks = _table_ranks(_IDENTITY[1:])
    ranked = [
        (rank, x.record_key, x)
        for x in records
        if (rank := ranks[x.source_table]) is not None and x.claims.get(r.NAME)
    ]
    return min(ranked, key=lambda v: v[:2])[2] if ranked else None


def _conflicts(x: LinkedRecord, reference: LinkedRecord | None) -> bool:
    """One number, two people (domain.md §3): name AND birth date disagree with the reference.
    A name alone disagreeing is a variant (an inaccurate name), not another person."""
    if reference is None or x is reference or x.link_kind is not LinkKind.EXACT:
        return False
    name, birth = x.claims.get(r.NAME), x.claims.get(r.BIRTH_DATE)
    if not name or not birth:
        return False
    return _same_name(
        name, reference.claims.get(r.NAME)
    ) is False and birth != reference.claims.get(r.BIRTH_DATE)


def _same_name(a: str | None, b: str | None) -> bool | None:
    if not a or not b:
        return None
    return "".join(a.split()) == "".join(b.split())


def _inaccurate(
    records: Sequence[LinkedRecord],
    values: dict[str, dict[str, Any]],
    reference: LinkedRecord | None,
) -> list[Gap]:
    gaps: list[Gap] = []
    register = (
        reference if reference is not None and reference.source_table == "hukou.person" else None
    )
    for x in records:
        label = SOURCE_LABELS.get(x.system, x.system)
        number = x.claims.get(r.ID_NUMBER)
        if x.link_kind is LinkKind.CANDIDATE and number:
            for defect in validate(number):
                gaps.append(
                    Gap(
                        RegistrationItem.ID_NUMBER,
                        x.system,
                        f"公民身份号码有误（{label}）：{defect.code.value}",
                        f"公民身份号码有误：{label}记录为{number}，{defect.message_zh}",
                    )
                )
        name = x.claims.get(r.NAME)
        if (
            register is not None
            and x is not register
            and _same_name(name, register.claims.get(r.NAME)) is False
        ):
            gaps.append(
                Gap(
                    RegistrationItem.NAME,
                    x.system,
                    f"姓名与户籍登记不一致（{label}）",
                    f"姓名与户籍登记不一致：{label}为{name}，户籍为{register.claims[r.NAME]}",
                )
            )
    gaps += _phone_gaps(records, values.get(r.PHONE))
    number, birth = values.get(r.ID_NUMBER), values.get(r.BIRTH_DATE)
    gender = values.get(r.GENDER)
    if number and values.get(r.DOCUMENT_TYPE, {}).get("value") == "01":
        n = number["value"]
        if birth and f"{n[6:10]}-{n[10:12]}-{n[12:14]}" != birth["value"]:
            system = birth["source"].split(".")[0]
            gaps.append(
                Gap(
                    RegistrationItem.BIRTH_DATE,
                    system,
                    "出生日期与公民身份号码不一致",
                    f"出生日期与公民身份号码不一致：记录为{birth['value']}",
                )
            )
        # The 17th character: odd for a man, even for a woman (domain.md §3); GB/T 2261.1's
        # 0 (unknown) and 9 (unstated) disagree with nothing.
        if gender and gender["value"] in _GENDER_NAMES and gender["value"] != _gender_of(n):
            system = gender["source"].split(".")[0]
            gaps.append(
                Gap(
                    RegistrationItem.GENDER,
                    system,
                    "性别与公民身份号码不一致",
                    f"性别与公民身份号码不一致：记录为{_GENDER_NAMES[gender['value']]}",
                )
            )
    return gaps


_GENDER_NAMES: Final = {"1": "男", "2": "女"}  # GB/T 2261.1


def _gender_of(number: str) -> str:
    """The gender code a valid 18-character citizen number says."""
    return "1" if int(number[16]) % 2 else "2"


def _phone_gaps(records: Sequence[LinkedRecord], phone: dict[str, Any] | None) -> list[Gap]:
    """A malformed phone is an inaccurate item of the system that holds it (domain.md §5): the
    phone shown when no source has a well-formed one, else any source ranked above the one
    shown (it would answer for the phone but for its form)."""
    if phone is None:
        return []
    ranks = _table_ranks(_PRECEDENCE[r.PHONE])
    shown = ranks[phone["source"]]
    shown = 99 if shown is None else shown
    malformed = [
        (x.system, x.claims[r.PHONE])
        for x in records
        if x.link_kind is not LinkKind.CANDIDATE
        and (rank := ranks[x.source_table]) is not None
        and rank < shown
        and _usable(r.PHONE, x.claims.get(r.PHONE))
        and not _well_formed(r.PHONE, x.claims[r.PHONE])
    ]
    if not _well_formed(r.PHONE, phone["value"]):
        malformed.append((phone["source"].split(".")[0], phone["value"]))
    return [
        Gap(
            RegistrationItem.PHONE,
            system,
            "手机号码格式错误",
            f"手机号码格式错误：{SOURCE_LABELS.get(system, system)}记录为{value}",
        )
        for system, value in malformed
    ]


def birth_date_of(golden: Golden) -> date | None:
    value = golden.value(r.BIRTH_DATE)
    return None if value is None else date.fromisoformat(value)

"""What every event and every model inside one share: immutability, a closed set of fields, and
the value types the registry validates the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from canbao_contracts.id_numbers import PROVINCE_CODES
from canbao_contracts.topics import Topic


class ContractModel(BaseModel):
    """Frozen, and `extra="forbid"`: a field the reader does not know is an error, never silently
    dropped. So a new optional field is rolled out consumers first; anything else is a new `.vN`
    event type (see `canbao_contracts.events`)."""

    # Attribute docstrings become the fields' descriptions in the exported JSON Schema.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Event(ContractModel):
    """An event on a registry topic: its CloudEvents `type` (`ce_type`), the `topic` it travels
    on, and its `subject`, which is both the Kafka key and `ce_subject`."""

    type: ClassVar[str]  # reverse-DNS + version: cn.canbao.registry.person.registered.v1
    topic: ClassVar[Topic]

    @classmethod
    def topics(cls) -> tuple[Topic, ...]:
        """Every topic the event may travel on: its `topic`, or one per business system for the
        feedback events (`destination` says which)."""
        return (cls.topic,)

    @property
    def destination(self) -> Topic:
        """The topic this event travels on."""
        return type(self).topic

    @property
    def subject(self) -> str:
        """The Kafka key: the person_id, so one person's events keep their order
        (architecture.md "Ordering by person")."""
        raise NotImplementedError


def _known_province(code: str) -> str:
    if code[:2] not in PROVINCE_CODES:
        raise ValueError(f"{code} is not a GB/T 2260 division: no province {code[:2]}")
    return code


# A GB/T 2260 administrative division: 6 ASCII digits, the first two a province.
RegionCode = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{6}$"), AfterValidator(_known_province)
]
# Masked as canbao_contracts.id_numbers.mask_name / mask do (api.md): at most the first character
# of a name, the first and last four characters of a number. The patterns refuse clear values, so
# a producer that forgets to mask fails here instead of leaking into the bus.
MaskedName = Annotated[str, StringConstraints(pattern=r"^[^*\s]?\*+$")]
MaskedIdNumber = Annotated[str, StringConstraints(pattern=r"^([^*\s]{4}\*+[^*\s]{4}|\*{1,8})$")]
# Ids of units and records in the source systems (AAB001 is varchar(20); primary keys up to 30).
SourceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A sentence for a clerk; never a personal value (those stay in identity, see events.person_state).
Reason = Annotated[str, StringConstraints(min_length=1, max_length=300)]

T = TypeVar("T")


def canonical_order(items: Iterable[T], *, key: Callable[[T], Any], what: str) -> tuple[T, ...]:
    """`items` sorted by `key`, refusing repeats: two equal verdicts or gap lists serialise to
    the same bytes whatever order the producer built them in, and a repeat is a producer's bug."""
    ordered = tuple(sorted(items, key=key))
    keys = [key(item) for item in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{what} lists an entry twice")
    return ordered


def table_position(member: Enum) -> int:
    """A code's position in its code table (the order of domain.md and api.md)."""
    return list(type(member)).index(member)

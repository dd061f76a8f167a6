"""The golden-record builder's rebuild in process, without a database: CPU µs per person per step.

    uv run --frozen python -m bench.rebuild [--people 2000] [--repeats 7]

People are drawn by the population generator (seed 1) with their source records as the store
holds them after the first load's resolution (tests/identity/generated.py: staged by the
consumers' own handler); `linked_records` is the store's reading of them (`Store._linked`, the
jsonb columns parsed as the driver does, the claims opened).

Then the steps of `GoldenRecords._rebuild_one` are timed one at a time over all the people, in
two cases: *first*, the person's first build (nothing published yet); *grown*, a rebuild after
one more record arrived (what was published and sealed before is the build without the record
of the last source table). `total` is `_rebuild_one` itself, the events encoded as the outbox
does (`encode`). Each figure is the median of `--repeats` runs; the machine is noisy, so compare
two commits by running both alternately.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from canbao_contracts.envelope import encode
from canbao_identity.golden import GoldenDocument, golden_record
from canbao_identity.golden_records import GoldenRecords
from canbao_identity.history import value_changes
from canbao_identity.publication import current_facts, facts_events, person_event, public_state
from canbao_identity.store import Store
from tests.identity.generated import ORDER, PROTECTOR, StoredRow, linked, stored_rows

SOURCE = "/canbao/identity"


class Person:
    """What `Store.persons` answers for a person (the attributes _rebuild_one reads)."""

    def __init__(self, row: dict[str, Any] | None = None) -> None:
        self.demographic_index = None if row is None else row["demographic_index"]
        self.public_state = None if row is None else row["public_state"]
        self.emitted_facts = None if row is None else row["emitted_facts"]
        self.golden_ciphertext = None if row is None else row["golden_ciphertext"]
        self.key_id = None if row is None else row["key_id"]


def builder() -> GoldenRecords:
    def publish(event: Any) -> None:
        encode(event, source=SOURCE)  # as the outbox does; kept, they would burden the collector

    return GoldenRecords(store=None, protector=PROTECTOR, publish=publish)  # type: ignore[arg-type]


def case(
    people: list[tuple[UUID, list[StoredRow]]], grown: bool
) -> list[tuple[UUID, Person, list[StoredRow]]]:
    """Each person with what was built before: nothing (first), or the build of all but the
    records of the last source table (grown)."""
    if not grown:
        return [(p, Person(), rows) for p, rows in people]
    store, before = Store(None, PROTECTOR), builder()  # type: ignore[arg-type]
    cases = []
    for person_id, rows in people:
        last = max(ORDER[row.source_table] for row in rows)
        earlier = [row for row in rows if ORDER[row.source_table] != last]
        row, _ = before._rebuild_one(person_id, Person(), linked(store, earlier), [])
        cases.append((person_id, Person(row), rows))
    return cases


def stages(
    cases: list[tuple[UUID, Person, list[StoredRow]]],
) -> dict[str, Callable[[], None]]:
    """Each step as a loop over every person, its inputs computed beforehand."""
    store = Store(None, PROTECTOR)  # type: ignore[arg-type]
    records = [linked(store, rows) for _, _, rows in cases]
    goldens = [golden_record(x) for x in records]
    states = [public_state(g) for g in goldens]
    facts = [current_facts(p, g) for (p, _, _), g in zip(cases, goldens, strict=True)]
    events = []
    for (person_id, person, _), state, current in zip(cases, states, facts, strict=True):
        event = person_event(person_id, state, person.public_state)
        asserted, _ = facts_events(person_id, current, person.emitted_facts or {})
        events.append(([event] if event is not None else []) + asserted)
    documents = [GoldenDocument.of(g) for g in goldens]
    previous = [
        None
        if person.golden_ciphertext is None
        else GoldenDocument.opened(PROTECTOR, p, person.golden_ciphertext, person.key_id)
        for p, person, _ in cases
    ]
    rebuild = builder()

    def run_linked() -> None:
        for _, _, rows in cases:
            linked(store, rows)

    def run_golden() -> None:
        for x in records:
            golden_record(x)

    def run_public_state() -> None:
        for g in goldens:
            public_state(g)

    def run_person_event() -> None:
        for (person_id, person, _), state in zip(cases, states, strict=True):
            person_event(person_id, state, person.public_state)

    def run_current_facts() -> None:
        for (person_id, _, _), g in zip(cases, goldens, strict=True):
            current_facts(person_id, g)

    def run_facts_events() -> None:
        for (person_id, person, _), current in zip(cases, facts, strict=True):
            facts_events(person_id, current, person.emitted_facts or {})

    def run_encode() -> None:
        for each in events:
            for event in each:
                encode(event, source=SOURCE)

    def run_document() -> None:
        for (person_id, _, _), g in zip(cases, goldens, strict=True):
            GoldenDocument.of(g).sealed(PROTECTOR, person_id)

    def run_history() -> None:
        for (person_id, person, _), before, document in zip(
            cases, previous, documents, strict=True
        ):
            if person.golden_ciphertext is not None:
                GoldenDocument.opened(PROTECTOR, person_id, person.golden_ciphertext, person.key_id)
            value_changes(PROTECTOR, person_id, before, document)

    def run_rebuild() -> None:
        for (person_id, person, _), x in zip(cases, records, strict=True):
            rebuild._rebuild_one(person_id, person, x, [])

    return {
        "linked_records": run_linked,
        "golden_record": run_golden,
        "public_state": run_public_state,
        "person_event": run_person_event,
        "current_facts": run_current_facts,
        "facts_events": run_facts_events,
        "encode": run_encode,
        "document": run_document,
        "history": run_history,
        "_rebuild_one": run_rebuild,
    }


def main(count: int, repeats: int) -> None:
    people = stored_rows(count)
    records = sum(len(rows) for _, rows in people)
    print(f"{count} people, {records / count:.1f} records each")
    print(f"CPU µs per person, median of {repeats}")
    for name, grown in (("first", False), ("grown", True)):
        steps = stages(case(people, grown))
        timings: dict[str, list[float]] = {step: [] for step in steps}
        for _ in range(repeats):
            for step, run in steps.items():
                gc.collect()
                started = time.process_time()
                run()
                timings[step].append((time.process_time() - started) / count * 1e6)
        medians = {step: statistics.median(times) for step, times in timings.items()}
        parts = sum(v for k, v in medians.items() if k != "_rebuild_one")
        print(f"\n{name}:")
        for step, median in medians.items():
            print(f"  {step:<16} {median:8.1f}")
        print(f"  {'sum of steps':<16} {parts:8.1f}")
        print(
            f"  {'total':<16} {medians['linked_records'] + medians['_rebuild_one']:8.1f}"
            "  (linked_records + _rebuild_one)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="CPU µs per person of the rebuild's steps")
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()
    main(arguments.people, arguments.repeats)

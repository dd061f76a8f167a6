"""The Debezium bridge end to end: rows changed with plain SQL in three source systems arrive on
their `cdc.<schema>.<table>` topics as Debezium wrote them (shared/sources.md, "The change
events"): keyed by primary key, with op, before/after, source.lsn, and a tombstone after a
delete."""

from __future__ import annotations

from datetime import date

from tests.stack.conftest import Cdc, Event

ID_NUMBER = "520102199001011234"
ENROLMENT_KEY = {"aac001": "P0001", "aae140": "110", "aab301": "520102"}


def days_since_epoch(day: date) -> int:
    """How Debezium writes a `date` column by default (io.debezium.time.Date)."""
    return (day - date(1970, 1, 1)).days


def on(events: list[Event], topic: str) -> list[Event]:
    return [event for event in events if event.topic == topic]


async def test_changes_in_three_tables_arrive_as_debezium_events(cdc: Cdc) -> None:
    # Zhang San is in the household register before the bridge starts: the snapshot reads him.
    await cdc.execute(
        "INSERT INTO hukou.person (sfzh, xm, xb, csrq, hjdz_xzqh, ryzt) "
        "VALUES ($1, '张三', '1', '1990-01-01', '520102', '0')",
        ID_NUMBER,
    )
    bridge = cdc.start_bridge()
    async with cdc.reader() as reader:
        await reader.wait_for(lambda events: len(events) >= 1, within=60, bridge=bridge)
        # Then, one transaction each: he enrols in the urban employees' pension, a cremation
        # record is entered by mistake, his name is corrected, the enrolment is suspended,
        # the mistaken record is withdrawn, and his household record is cancelled.
        statements = [
            "INSERT INTO si_core.ac02 (aac001, aae140, aab301, aab001, aac008, aac030, aae030) "
            "VALUES ('P0001', '110', '520102', 'U001', '1', '2001-02-03', '2020-01-01')",
            f"INSERT INTO civil.cremation (sfzh, xm, swrq) VALUES ('{ID_NUMBER}', '张三', "
            "'2024-05-06')",
            f"UPDATE hukou.person SET xm = '张叁' WHERE sfzh = '{ID_NUMBER}'",
            "UPDATE si_core.ac02 SET aac008 = '2' WHERE aac001 = 'P0001'",
            "DELETE FROM civil.cremation WHERE sfzh = '520102199001011234'",
            f"DELETE FROM hukou.person WHERE sfzh = '{ID_NUMBER}'",
        ]
        for statement in statements:
            await cdc.execute(statement)
        # 1 read + 2 inserts + 2 updates + 2 deletes + 2 tombstones
        events = await reader.wait_for(lambda events: len(events) >= 9, within=60, bridge=bridge)
    assert bridge.terminate() == 0
    assert bridge.status()["state"] == "stopped"

    person, enrolment = (
        on(events, cdc.topic("hukou", "person")),
        on(events, cdc.topic("si_core", "ac02")),
    )
    cremation = on(events, cdc.topic("civil", "cremation"))
    assert len(events) == len(person) + len(enrolment) + len(cremation) == 9

    # hukou.person: read by the snapshot, updated, deleted, then the tombstone.
    assert [e.op for e in person] == ["r", "u", "d", "tombstone"]
    assert all(e.key == {"sfzh": ID_NUMBER} for e in person)
    read, renamed, deleted, tombstone = person
    assert read.envelope is not None and read.envelope["before"] is None
    assert read.envelope["after"]["xm"] == "张三"
    assert read.envelope["after"]["csrq"] == days_since_epoch(date(1990, 1, 1))
    assert read.envelope["source"]["snapshot"] in ("true", "last")
    assert renamed.envelope is not None and renamed.envelope["source"]["snapshot"] == "false"
    assert renamed.envelope["before"]["xm"] == "张三"  # REPLICA IDENTITY FULL: the old row
    assert renamed.envelope["after"]["xm"] == "张叁"
    assert deleted.envelope is not None and deleted.envelope["after"] is None
    assert deleted.envelope["before"]["xm"] == "张叁"
    assert (tombstone.partition, tombstone.offset) == (deleted.partition, deleted.offset + 1)

    # si_core.ac02: keyed by its composite primary key; inserted, then suspended.
    assert [e.op for e in enrolment] == ["c", "u"]
    assert all(e.key == ENROLMENT_KEY for e in enrolment)
    enrolled, suspended = enrolment
    assert enrolled.envelope is not None and suspended.envelope is not None
    assert enrolled.envelope["after"]["aac008"] == "1"
    assert enrolled.envelope["after"]["aac030"] == days_since_epoch(date(2001, 2, 3))
    assert suspended.envelope["before"]["aac008"] == "1"
    assert suspended.envelope["after"]["aac008"] == "2"

    # civil.cremation: keyed by its bigserial id; inserted, withdrawn, tombstone.
    assert [e.op for e in cremation] == ["c", "d", "tombstone"]
    assert {tuple(e.key) for e in cremation} == {("id",)}
    assert len({e.key["id"] for e in cremation}) == 1
    entered, withdrawn, cremation_tombstone = cremation
    assert entered.envelope is not None and entered.envelope["after"]["sfzh"] == ID_NUMBER
    assert withdrawn.envelope is not None and withdrawn.envelope["before"]["sfzh"] == ID_NUMBER
    assert cremation_tombstone.offset == withdrawn.offset + 1

    # Every change carries its source position; in commit order, the LSNs grow.
    streamed = [enrolled, entered, renamed, suspended, withdrawn, deleted]
    for event, (schema, table) in zip(
        streamed,
        [
            ("si_core", "ac02"),
            ("civil", "cremation"),
            ("hukou", "person"),
            ("si_core", "ac02"),
            ("civil", "cremation"),
            ("hukou", "person"),
        ],
        strict=True,
    ):
        assert event.envelope is not None
        assert (event.envelope["source"]["schema"], event.envelope["source"]["table"]) == (
            schema,
            table,
        )
        assert isinstance(event.envelope["ts_ms"], int)
    lsns = [event.lsn for event in streamed if event.lsn is not None]
    assert len(lsns) == len(streamed)
    assert lsns == sorted(lsns) and len(set(lsns)) == len(lsns)

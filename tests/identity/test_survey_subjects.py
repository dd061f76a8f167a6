"""What identity gives a household survey (domain.md §2.3, api.md "Survey"): the household of the
household register in the golden record (hukou.person hh, yhzgx), never in the public events;
and `POST /internal/survey-subjects`, a division's living locally registered people (or named
people) streamed as NDJSON in clear, a household's members together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from canbao_contracts.id_numbers import check_character
from canbao_identity.app import create
from canbao_identity.routes import RegionSubjects, subjects_query
from canbao_identity.settings import IdentitySettings
from canbao_identity.tables import persons
from canbao_platform.db import Database, alembic_config, migrate_async
from canbao_platform.service import Resources
from tests.conftest import ServiceAuth
from tests.identity import households
from tests.identity.conftest import MIGRATIONS, PROTECTOR, Harness, change

NDJSON = "application/x-ndjson"
LINE_FIELDS = [
    "person_id", "document_type", "id_number", "name", "gender", "birth_date", "household_place",
    "household_region_code", "region_code", "household_number", "household_relation",
    "household_address", "residence_address", "phone", "household_type", "personal_identity",
]  # fmt: skip


def citizen(region: str, birth: date, sequence: int) -> str:
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def member(
    sequence: int,
    *,
    region: str = "520102",
    hh: str | None = None,
    relation: str | None = None,
    status: str = "0",
    name: str | None = None,
) -> dict[str, Any]:
    """A hukou.person row of someone born 1980-01-01 + sequence days."""
    birth = date(1980, 1, 1 + sequence)
    name = name or "张" + "一二三四五六七八九十"[sequence]
    return {
        "sfzh": citizen(region, birth, sequence),
        "xm": name,
        "xb": "12"[sequence % 2],
        "csrq": birth,
        "mz": "01",
        "hjdz_xzqh": region,
        "hjdz": f"贵州省贵阳市{region}幸福路{sequence}号",
        "hh": hh,
        "yhzgx": relation,
        "ryzt": status,
        "zxrq": date(2025, 1, 1) if status == "1" else None,
    }


def ac01(row: dict[str, Any], key: str, region: str = "520102", **more: Any) -> dict[str, Any]:
    return {
        "aac001": key,
        "aac002": row["sfzh"],
        "aac003": row["xm"],
        "aac004": row["xb"],
        "aac006": f"{row['csrq']:%Y%m%d}",
        "aab301": region,
        **more,
    }


H1, H2, H3 = "520102000001", "520102000002", "520103000001"
HEAD = member(0, hh=H1, relation="01", name="王伟")
SPOUSE = member(1, hh=H1, relation="02")
CHILD = member(2, hh=H1, relation="10")
PARENT_DECEASED = member(3, hh=H1, relation="20", status="1")
OTHER_HEAD = member(4, hh=H2, relation="01")
OTHER_LODGER = member(5, hh=H2, relation="99")
NO_HOUSEHOLD = member(6)  # in the register without a 户号
NEXT_DISTRICT = member(7, region="520103", hh=H3, relation="01")
OTHER_PROVINCE = member(8, region="530102", hh="530102000001", relation="01")
MIGRANT_BIRTH = date(1992, 2, 2)
PERMIT = {  # household registered in Yunnan, living in 520102 (hukou.resident_permit)
    "jzzh": "JZ5201020001", "sfzh": citizen("530102", MIGRANT_BIRTH, 21), "xm": "周强",
    "xb": "1", "csrq": MIGRANT_BIRTH, "hjdz_xzqh": "530102", "jzdz_xzqh": "520102",
    "jzdz": "贵州省贵阳市南明区花果园街道15号", "qfrq": date(2024, 3, 1),
    "yxqz": date(2029, 3, 1), "zt": "1",
}  # fmt: skip
INSURED_ONLY = {  # insured in 520102, no household register record
    "aac001": "P9", "aac002": citizen("520102", date(1985, 5, 5), 31), "aac003": "李娜",
    "aac004": "2", "aac006": "19850505", "aab301": "520102",
}  # fmt: skip


async def feed_division(harness: Harness) -> dict[str, UUID]:
    rows = {
        "head": HEAD,
        "spouse": SPOUSE,
        "child": CHILD,
        "parent": PARENT_DECEASED,
        "other_head": OTHER_HEAD,
        "lodger": OTHER_LODGER,
        "no_household": NO_HOUSEHOLD,
        "next_district": NEXT_DISTRICT,
        "other_province": OTHER_PROVINCE,
    }
    insured_head = ac01(
        HEAD, "P1", aae005="13800138000", aae006="贵阳市南明区某路1号", aac009="11", aac012="11"
    )
    await harness.apply(
        [change("hukou.person", row) for row in rows.values()]
        + [
            change("si_core.ac01", insured_head),
            change("hukou.resident_permit", PERMIT),
            change("si_core.ac01", INSURED_ONLY),
        ]
    )
    people = {}
    for name, row in {**rows, "migrant": PERMIT, "insured": INSURED_ONLY}.items():
        person_id = await harness.person_of(row.get("sfzh") or row["aac002"])
        assert person_id is not None, name
        people[name] = person_id
    return people


def app_client(database: Database, role: str | None, scope: str = "52") -> httpx.AsyncClient:
    settings = IdentitySettings(CANBAO_ENV="test", database_url=database.url)
    app = create(settings)
    app.state.resources = Resources(settings=settings, database=database)
    auth = (
        None
        if role is None
        else ServiceAuth("identity", username="staff-1", role=role, scope=scope)
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://identity", auth=auth
    )


@pytest.fixture
async def client(identity_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(identity_db, "platform") as http:
        yield http


async def subjects(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post("/internal/survey-subjects", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == NDJSON
    assert response.text == "" or response.text.endswith("\n")
    lines = [json.loads(line) for line in response.text.splitlines()]
    for line in lines:
        assert list(line) == LINE_FIELDS
    return lines


def households_of(lines: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
    """(region, 户号) of each run of lines, in the order they come."""
    runs: list[tuple[str | None, str | None]] = []
    for line in lines:
        key = (line["region_code"], line["household_number"])
        if not runs or runs[-1] != key:
            runs.append(key)
    return runs


def assert_survey_order(lines: list[dict[str, Any]]) -> None:
    """By region; within it each household's members one after another (person_id order), the
    people without a 户号 last."""
    runs = households_of(lines)
    assert len(runs) == len(set(runs)), f"a household comes apart: {runs}"
    regions = [region for region, _ in runs]
    assert regions == sorted(regions)  # type: ignore[type-var]
    for region in set(regions):
        numbers = [number for r, number in runs if r == region]
        assert None not in numbers[:-1], f"people without a household before a household: {runs}"
    for key in runs:
        ids = [line["person_id"] for line in lines if households_of([line]) == [key]]
        assert ids == sorted(ids)


async def test_the_household_of_the_register_reaches_the_golden_record_only(
    harness: Harness,
) -> None:
    people = await feed_division(harness)
    spouse = (await harness.golden(people["spouse"]))["golden"]
    assert spouse["household_number"]["value"] == H1
    assert spouse["household_relation"]["value"] == "02"
    assert spouse["household_address"]["value"] == SPOUSE["hjdz"]
    assert {spouse[k]["source"] for k in ("household_number", "household_relation")} == {
        "hukou.person"
    }
    # A residence permit and the insurance system know no household of the register.
    for name in ("migrant", "insured"):
        golden = (await harness.golden(people[name]))["golden"]
        assert not {"household_number", "household_relation", "household_address"} & set(golden)
    # Personal data: not in what identity publishes (contracts PersonState).
    assert harness.published
    for event in harness.published:
        text = event.model_dump_json()
        assert "household_number" not in text and "household_relation" not in text
        assert H1 not in text and H2 not in text


async def test_a_division_streams_its_living_locally_registered_people_by_household(
    harness: Harness, client: httpx.AsyncClient, identity_db: Database
) -> None:
    people = await feed_division(harness)
    named = {person_id: name for name, person_id in people.items()}

    lines = await subjects(client, {"region_code": "520102"})

    assert sorted(named[UUID(x["person_id"])] for x in lines) == sorted(
        ["head", "spouse", "child", "other_head", "lodger", "no_household"]
    ), "not the deceased parent, the migrant, the insured-only, another district's"
    assert_survey_order(lines)
    assert named[UUID(lines[-1]["person_id"])] == "no_household"
    head = next(x for x in lines if x["person_id"] == str(people["head"]))
    assert head == {
        "person_id": str(people["head"]),
        "document_type": "01",
        "id_number": HEAD["sfzh"],
        "name": "王伟",
        "gender": "1",
        "birth_date": "1980-01-01",
        "household_place": HEAD["hjdz"],
        "household_region_code": "520102",
        "region_code": "520102",
        "household_number": H1,
        "household_relation": "01",
        "household_address": HEAD["hjdz"],
        "residence_address": "贵阳市南明区某路1号",  # the insurance system's, before the register's
        "phone": "13800138000",
        "household_type": "11",
        "personal_identity": "11",
    }
    relations = {x["household_relation"] for x in lines if x["household_number"] == H1}
    assert relations == {"01", "02", "10"}

    # A prefix: the city, its districts in order; the province; another province.
    city = await subjects(client, {"region_code": "5201"})
    assert [x["person_id"] for x in city[: len(lines)]] == [x["person_id"] for x in lines]
    assert [named[UUID(x["person_id"])] for x in city[len(lines) :]] == ["next_district"]
    assert_survey_order(city)
    assert await subjects(client, {"region_code": "52"}) == city
    async with app_client(identity_db, "platform", scope="53") as yunnan:
        assert [x["person_id"] for x in await subjects(yunnan, {"region_code": "53"})] == [
            str(people["other_province"])
        ]
    assert await subjects(client, {"region_code": "520104"}) == []


async def test_who_dies_or_moves_leaves_the_division_s_stream(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    """The columns the stream selects by are written with every rebuild, as public_state is."""
    people = await feed_division(harness)
    await harness.apply(
        [
            change("hukou.person", SPOUSE | {"ryzt": "1", "zxrq": date(2026, 1, 2)}),
            change("hukou.person", CHILD | {"hjdz_xzqh": "520103", "hh": H3, "yhzgx": "10"}),
        ]
    )
    ids = {x["person_id"] for x in await subjects(client, {"region_code": "520102"})}
    assert str(people["spouse"]) not in ids and str(people["child"]) not in ids
    assert str(people["head"]) in ids
    moved = await subjects(client, {"region_code": "520103"})
    assert [(x["person_id"], x["household_number"]) for x in moved] == sorted(
        [(str(people["child"]), H3), (str(people["next_district"]), H3)]
    )


async def test_named_people_stream_if_they_exist_and_live(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    people = await feed_division(harness)
    merged = people["insured"]  # one person with next_district: their ac01 joins them
    response = await client.post(
        f"/internal/persons/{merged}/merge",
        json={"surviving_person_id": str(people["next_district"])},
    )
    assert response.status_code == 200, response.text
    asked = [
        people["migrant"],
        people["parent"],
        merged,
        uuid4(),
        people["child"],
        people["next_district"],
        people["migrant"],
    ]

    lines = await subjects(client, {"person_ids": [str(i) for i in asked]})

    assert [x["person_id"] for x in lines] == [
        str(people["child"]),  # 520102, a household
        str(people["migrant"]),  # 520102, no household: last of the region, listed once
        str(people["next_district"]),  # 520103
    ], "not the deceased, the merged id, an unknown id"
    migrant = lines[1]
    assert (migrant["household_region_code"], migrant["region_code"]) == ("530102", "520102")
    assert migrant["household_number"] is None and migrant["household_address"] is None
    assert migrant["household_type"] == "52" and migrant["name"] == "周强"


@pytest.mark.parametrize("role", ["platform", "county", "surveyor"])
async def test_the_survey_s_roles_may_ask(identity_db: Database, role: str) -> None:
    async with app_client(identity_db, role) as http:
        assert await subjects(http, {"region_code": "520102"}) == []


@pytest.mark.parametrize("role", ["counter", "analyst", "admin"])
async def test_other_roles_are_refused(identity_db: Database, role: str) -> None:
    async with app_client(identity_db, role) as http:
        response = await http.post("/internal/survey-subjects", json={"region_code": "520102"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/caller-not-allowed"


async def test_a_reviewer_streams_only_their_own_region(
    harness: Harness, identity_db: Database
) -> None:
    people = await feed_division(harness)
    async with app_client(identity_db, "platform", scope="520103") as http:
        refused = await http.post("/internal/survey-subjects", json={"region_code": "5201"})
        named = await subjects(http, {"person_ids": [str(p) for p in people.values()]})
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/out-of-scope"
    assert [line["region_code"] for line in named] == ["520103"]


async def test_no_service_token_no_answer(identity_db: Database) -> None:
    async with app_client(identity_db, None) as http:
        response = await http.post("/internal/survey-subjects", json={"region_code": "520102"})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/service-token-invalid"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"region_code": "520102", "person_ids": [str(uuid4())]},
        {"region_code": "5"},
        {"region_code": "5201021"},
        {"region_code": "52o1"},
        {"region_code": 520102},
        {"person_ids": []},
        {"person_ids": [str(uuid4()) for _ in range(1001)]},
        {"person_ids": ["110101198001010010"]},
    ],
)
async def test_a_request_names_a_division_or_up_to_1000_people(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/internal/survey-subjects", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_division_larger_than_a_batch_streams_whole_and_in_order(
    identity_db: Database, client: httpx.AsyncClient
) -> None:
    """2,600 people written as the builder writes them (households.py): more than two batches
    of the cursor in the city, households split across no batch boundary."""
    population = await households.load(identity_db, PROTECTOR, 2_600)

    city = await subjects(client, {"region_code": "5201"})
    district = await subjects(client, {"region_code": "520111"})

    for lines, prefix in ((city, "5201"), (district, "520111")):
        expected = population.expected(prefix)
        assert sorted(x["person_id"] for x in lines) == sorted(str(x.person_id) for x in expected)
        assert_survey_order(lines)
        by_id = {str(x.person_id): x for x in expected}
        for line in lines:
            person = by_id[line["person_id"]]
            assert (line["region_code"], line["household_number"], line["household_relation"]) == (
                person.region_code,
                person.household_number,
                person.household_relation,
            )
    assert len(city) > 2 * 1000 and len({x["region_code"] for x in city}) == 4
    assert {x["region_code"] for x in district} == {"520111"}


async def test_a_division_is_read_in_the_index_s_order_without_a_sort(
    identity_db: Database,
) -> None:
    """PostgreSQL walks ix_persons_survey_subjects (region in byte order, households, nulls last):
    a county's 500,000 people are not sorted before the first line goes out."""
    await households.load(identity_db, PROTECTOR, 400)
    async with identity_db.engine.connect() as connection:
        # Byte order whatever the cluster's locale (this one's is C.UTF-8, a province's may not
        # be): a prefix is then a range, and ':' comes after '9'.
        collation = await connection.scalar(
            sa.text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'persons' AND column_name = 'region_code'"
            )
        )
        assert collation == "C"
        await connection.execute(sa.text("SET enable_seqscan = off"))
        await connection.execute(sa.text("SET enable_sort = off"))
        for prefix in ("52", "5201", "520102"):
            query = subjects_query(RegionSubjects(region_code=prefix), scope="52")
            compiled = query.compile(
                connection.sync_connection, compile_kwargs={"literal_binds": True}
            )  # type: ignore[arg-type]
            plan = "\n".join(await connection.scalars(sa.text(f"EXPLAIN {compiled}")))
            assert "ix_persons_survey_subjects" in plan and "Sort" not in plan, plan


async def test_the_migration_fills_the_new_columns_from_what_was_published(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    await asyncio.to_thread(command.upgrade, alembic_config(url, MIGRATIONS), "identity_0004")
    states = {
        uuid4(): {"region_code": "520102", "household_registered_locally": True, "deceased": False},
        uuid4(): {"region_code": "520103", "household_registered_locally": False, "deceased": True},
        uuid4(): None,
    }
    database = Database(url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            for person_id, state in states.items():
                await connection.execute(
                    sa.text(
                        "INSERT INTO persons (person_id, public_state) "
                        "VALUES (:p, CAST(:s AS jsonb))"
                    ),
                    {"p": person_id, "s": None if state is None else json.dumps(state)},
                )
        await migrate_async(url, MIGRATIONS)
        async with database.engine.connect() as connection:
            rows = {
                row.person_id: (row.region_code, row.household_registered, row.deceased)
                for row in await connection.execute(sa.select(persons))
            }
    finally:
        await database.dispose()
    assert sorted(rows.values(), key=str) == sorted(
        [("520102", True, False), ("520103", False, True), (None, False, False)], key=str
    )

"""Identity's rules one scenario at a time, on a real database (change events applied through the
handlers' code path, without the broker: test_service.py covers that)."""

from __future__ import annotations

import base64
import random
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canbao_identity.app import protector_from
from canbao_identity.routes import _person
from canbao_identity.settings import (
    DEV_BLIND_INDEX_KEY,
    DEV_DATA_KEY,
    DEV_DATA_KEY_ID,
    IdentitySettings,
)
from canbao_identity.tables import persons, review_queue, source_records
from tests.conftest import SERVICE_PUBLIC_KEY
from tests.identity.conftest import SETTINGS, Harness, Message, change, fresh_harness, tombstone

NUMBER = "110101198001010010"
LEGACY = "110101800101001"  # the same number, 15 digits
OTHER = "11010119900202008X"  # valid, ends in X


def hukou(number: str = NUMBER, name: str = "王伟", **more: Any) -> dict[str, Any]:
    return {
        "sfzh": number,
        "xm": name,
        "xb": "1",
        "csrq": date(1980, 1, 1),
        "hjdz_xzqh": "110101",
        "hjdz": "北京市东城区东华门街道1号",
        "ryzt": "0",
        **more,
    }


def ac01(number: str, name: str = "王伟", key: str = "P1", **more: Any) -> dict[str, Any]:
    return {
        "aac001": key,
        "aac002": number,
        "aac003": name,
        "aac004": "1",
        "aac006": "19800101",
        "aab301": "110101",
        "aae005": "13800138000",
        "aae006": "北京市东城区1号",
        **more,
    }


def card(
    number: str, name: str = "王伟", key: str = "C1", phone: str = "13800138000"
) -> dict[str, Any]:
    return {"aaz500": key, "aac002": number, "aac003": name, "aae005": phone, "card_status": "1"}


async def test_every_valid_form_of_the_number_is_one_person(harness: Harness) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change("si_core.ac01", ac01(LEGACY)),
            change("card.card_holder", card(f" {NUMBER[:6]} {NUMBER[6:]}")),
            change(
                "medical.insured",
                {
                    "psn_no": "M1",
                    "certno": NUMBER.lower(),
                    "psn_cert_type": "01",
                    "psn_name": "王伟",
                    "gend": "1",
                    "brdy": date(1980, 1, 1),
                    "insutype": "390",
                    "psn_insu_stas": "1",
                },
            ),
        ]
    )
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    for form in (LEGACY, NUMBER.lower(), f"  {NUMBER} ", f"{NUMBER[:6]} {NUMBER[6:]}"):
        assert await harness.person_of(form) == person_id
    golden = await harness.golden(person_id)
    assert golden["golden"]["id_number"]["value"] == NUMBER
    assert golden["golden"]["name"]["source"] == "hukou.person", "household register first"
    assert golden["golden"]["phone"]["source"] == "si_core.ac01"
    async with harness.db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(persons)) == 1


async def test_encrypted_columns_hold_no_clear_text(harness: Harness) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou(OTHER, "欧阳娜娜")),
            change("card.card_holder", card(OTHER, "欧阳娜娜", phone="13912345678")),
        ]
    )
    clear = ["欧阳娜娜", OTHER, OTHER[:17], "13912345678", "东华门"]
    clear_bytes = [c.encode() for c in clear] + [c.encode("utf-16-le") for c in clear]
    async with harness.db.engine.connect() as connection:
        for table in ("persons", "source_records", "identities", "review_queue"):
            rows = (await connection.execute(sa.text(f"SELECT * FROM {table}"))).all()
            assert rows or table == "review_queue"
            for row in rows:
                for value in row:
                    text = value if isinstance(value, bytes) else str(value).encode()
                    assert not any(c in text for c in clear_bytes), f"clear text in {table}"


async def test_a_mistyped_number_links_as_a_candidate_and_is_reported(harness: Harness) -> None:
    typo = NUMBER[:17] + "5"
    await harness.apply([change("hukou.person", hukou()), change("card.card_holder", card(typo))])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    assert await harness.person_of(typo) is None, "an invalid number is never an identity"
    golden = await harness.golden(person_id)
    [gap] = golden["inaccurate"]
    assert gap["item"] == "id_number" and gap["source"] == "card"
    assert gap["detail"].startswith("公民身份号码有误：社保卡系统记录为")


async def test_an_invalid_number_nobody_matches_waits_for_review(harness: Harness) -> None:
    typo = NUMBER[:17] + "5"
    await harness.apply([change("civil.dibao", {"id": 1, "sfzh": typo, "xm": "李四"})])
    async with harness.db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(persons)) == 0
        [entry] = (await connection.execute(sa.select(review_queue))).all()
    assert entry.state == "open" and "李四" not in entry.reason and typo not in entry.reason
    assert entry.reason.startswith("公民身份号码有误")


async def test_one_number_two_people_is_a_conflict_not_a_merge(harness: Harness) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change("si_core.ac01", ac01(NUMBER, "赵敏", aac006="19950505", aae005="13700137000")),
        ]
    )
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    golden = await harness.golden(person_id)
    assert golden["identity_conflict"] is True
    assert golden["golden"]["name"]["value"] == "王伟"
    assert golden["golden"]["birth_date"]["value"] == "1980-01-01"
    assert "phone" not in golden["golden"], "the other person's phone is not his"


async def test_a_name_variant_is_inaccurate_with_both_names(harness: Harness) -> None:
    await harness.apply(
        [change("hukou.person", hukou()), change("si_core.ac01", ac01(NUMBER, "王玮"))]
    )
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    [gap] = (await harness.golden(person_id))["inaccurate"]
    assert gap["detail"] == "姓名与户籍登记不一致：社保系统为王玮，户籍为王伟"


async def test_a_deleted_row_leaves_the_golden_record_and_a_late_copy_stays_out(
    harness: Harness,
) -> None:
    created = change("si_core.ac01", ac01(NUMBER), lsn=100)
    deleted = change("si_core.ac01", ac01(NUMBER), op="d", lsn=200)
    await harness.apply([change("hukou.person", hukou(), lsn=50), created])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    assert "phone" in (await harness.golden(person_id))["golden"]
    await harness.apply([deleted, tombstone(deleted)])
    await harness.apply([created])  # redelivered after the delete: older, ignored
    golden = await harness.golden(person_id)
    assert "phone" not in golden["golden"] and "phone" in golden["missing"]
    async with harness.db.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(source_records).where(source_records.c.source_table == "si_core.ac01")
            )
        ).one()
    assert row.deleted and row.claims_ciphertext is None, "a deleted row keeps no personal data"


async def test_a_cremation_record_makes_the_person_deceased(harness: Harness) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change(
                "civil.cremation", {"id": 9, "sfzh": NUMBER, "xm": "王伟", "swrq": date(2026, 3, 1)}
            ),
        ]
    )
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    assert (await harness.golden(person_id))["deceased"] is True
    kinds = [type(e).__name__ for e in harness.published]
    assert "PersonRegistered" in kinds


def _feed() -> list[Message]:
    """One person's rows in four systems, plus an update and a delete of one of them."""
    return [
        change("hukou.person", hukou(), lsn=10),
        change("si_core.ac01", ac01(LEGACY), lsn=20),
        change(
            "si_core.ac02",
            {
                "aac001": "P1",
                "aae140": "110",
                "aab301": "110101",
                "aab001": "U1",
                "aac008": "1",
                "aac030": date(2005, 1, 1),
            },
            lsn=30,
        ),
        change("card.card_holder", card(NUMBER.lower(), phone="13611112222"), lsn=40),
        change("si_core.ac01", ac01(LEGACY, aae005="13599998888"), op="u", lsn=50),
        change(
            "si_core.ac02",
            {
                "aac001": "P1",
                "aae140": "110",
                "aab301": "110101",
                "aab001": "U1",
                "aac008": "2",
                "aac030": date(2005, 1, 1),
            },
            op="u",
            lsn=60,
        ),
        change(
            "employment.job_registration",
            {
                "id": 3,
                "aac002": NUMBER,
                "aac003": "王伟",
                "aab001": "U1",
                "aab004": "某公司",
                "start_date": date(2010, 1, 1),
            },
            lsn=70,
        ),
        change(
            "employment.job_registration",
            {"id": 3, "aac002": NUMBER, "aac003": "王伟", "aab001": "U1", "aab004": "某公司"},
            op="d",
            lsn=80,
        ),
    ]


async def _converged(harness: Harness, order: list[Message], batch: int) -> dict[str, Any]:
    for start in range(0, len(order), batch):
        await harness.apply(order[start : start + batch])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    golden = await harness.golden(person_id)
    golden.pop("person_id")
    for entry in golden["golden"].values():
        entry.pop("observed_at", None)
    latest: dict[str, Any] = {}
    for event in harness.published:
        for fact in event.facts if type(event).__name__ == "FactsAsserted" else ():
            key = (fact.kind, fact.source.record_key)
            if key not in latest or fact.revision >= latest[key].revision:
                latest[key] = fact
    # What a consumer of registry.facts ends up believing: the live facts (a fact created and
    # deleted before it was ever published need not be retracted).
    golden["facts"] = sorted(
        (key, fact.model_dump_json(exclude={"fact_id", "revision", "observed_at"}))
        for key, fact in latest.items()
        if not fact.retracted
    )
    return golden


_IN_ORDER: list[dict[str, Any]] = []


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), duplicates=st.integers(0, 6), batch=st.integers(1, 5))
async def test_shuffled_and_duplicated_feeds_converge(
    migrated_database: Any, seed: int, duplicates: int, batch: int
) -> None:
    """Events arrive more than once and, across tables, in any order (sources.md): whatever the
    order and the copies, the golden record, its gaps and the last word on each fact are the
    same."""
    feed = _feed()
    if not _IN_ORDER:
        async with fresh_harness(migrated_database) as in_order:
            _IN_ORDER.append(await _converged(in_order, feed, len(feed)))
    want = _IN_ORDER[0]
    rng = random.Random(seed)
    shuffled = feed + [rng.choice(feed) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    async with fresh_harness(migrated_database) as harness:
        assert await _converged(harness, shuffled, batch) == want


async def test_employment_status_is_the_open_job_registration(harness: Harness) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change(
                "employment.job_registration",
                {
                    "id": 5,
                    "aac002": NUMBER,
                    "aac003": "王伟",
                    "aab001": "U9",
                    "aab004": "某某公司",
                    "aab301": "110101",
                    "start_date": date(2020, 3, 1),
                },
            ),
        ]
    )
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    status = (await harness.golden(person_id))["golden"]["employment_status"]
    assert status["value"] == {"status": "employed", "unit_id": "U9", "unit_name": "某某公司"}
    assert status["source"] == "employment.job_registration" and status["record_key"] == "id=5"


def test_production_refuses_the_development_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys come from the environment as a province sets them (deploy/README.md); production
    starts only with real ones."""
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.setenv("IDENTITY_DATABASE_URL", "postgresql+asyncpg://x/identity")
    # Production also asks which Kafka connection (canbao_platform.settings).
    monkeypatch.setenv("CANBAO_SERVICE_TOKEN_PUBLIC_KEY", SERVICE_PUBLIC_KEY)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    real = base64.b64encode(bytes(range(32))).decode()
    other = base64.b64encode(bytes(range(1, 33))).decode()
    with pytest.raises(ValueError, match="IDENTITY_DATA_KEY and IDENTITY_DATA_KEY_ID must be set"):
        IdentitySettings()
    monkeypatch.setenv("IDENTITY_DATA_KEY", DEV_DATA_KEY)
    monkeypatch.setenv("IDENTITY_DATA_KEY_ID", "kms-2026-11")
    monkeypatch.setenv("IDENTITY_BLIND_INDEX_KEY", other)
    with pytest.raises(ValueError, match="IDENTITY_DATA_KEY is the public development key"):
        IdentitySettings()
    monkeypatch.setenv("IDENTITY_DATA_KEY", real)
    monkeypatch.setenv("IDENTITY_DATA_KEY_ID", DEV_DATA_KEY_ID)
    with pytest.raises(ValueError, match="IDENTITY_DATA_KEY_ID is the development key's id"):
        IdentitySettings()
    monkeypatch.setenv("IDENTITY_DATA_KEY_ID", "kms-2026-11")
    monkeypatch.setenv("IDENTITY_BLIND_INDEX_KEY", DEV_BLIND_INDEX_KEY)
    with pytest.raises(ValueError, match="IDENTITY_BLIND_INDEX_KEY is the public development key"):
        IdentitySettings()
    monkeypatch.delenv("IDENTITY_BLIND_INDEX_KEY")
    with pytest.raises(ValueError, match="IDENTITY_BLIND_INDEX_KEY must be set in production"):
        IdentitySettings()
    monkeypatch.setenv("IDENTITY_BLIND_INDEX_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="IDENTITY_BLIND_INDEX_KEY must be 32 bytes"):
        IdentitySettings()
    monkeypatch.setenv("IDENTITY_BLIND_INDEX_KEY", other)
    settings = IdentitySettings()
    assert settings.environment == "production"
    assert settings.sealer().keys == {"kms-2026-11": bytes(range(32))}
    assert settings.blind_index_key_bytes() == bytes(range(1, 33))


async def test_rows_under_a_retired_key_stay_readable_after_rotation(harness: Harness) -> None:
    await harness.apply([change("hukou.person", hukou())])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    new_key = base64.b64encode(bytes(range(7, 39))).decode()
    rotated = protector_from(
        IdentitySettings(
            CANBAO_ENV="test",
            data_key=new_key,
            data_key_id="k2",
            retired_data_keys=f"{DEV_DATA_KEY_ID}:{DEV_DATA_KEY}",
        )
    )
    old = await _person(harness.db, rotated, person_id)
    assert old.golden["name"]["value"] == "王伟"
    rotated_harness = Harness(harness.db, protector=rotated)
    await rotated_harness.apply([change("si_core.ac01", ac01(NUMBER))])
    async with harness.db.engine.connect() as connection:
        key_ids = set((await connection.execute(sa.select(source_records.c.key_id))).scalars())
    assert key_ids == {SETTINGS.data_key_id, "k2"}
    assert (await _person(harness.db, rotated, person_id)).golden["phone"]["value"] == "13800138000"


async def test_ciphertext_is_stored_uncompressed_and_json_with_lz4(harness: Harness) -> None:
    """Sealed values never compress (AES-GCM output), so PostgreSQL must not try; the JSON that
    grows with a person's records is compressed with LZ4 (migration identity_0014)."""
    query = sa.text(
        "SELECT attrelid::regclass::text, attname, attstorage::text, attcompression::text "
        "FROM pg_attribute "
        "WHERE attrelid IN ('persons'::regclass, 'source_records'::regclass, "
        "'staged_changes'::regclass) "
        "AND (attname LIKE '%ciphertext' OR atttypid = 'jsonb'::regtype)"
    )
    async with harness.db.engine.connect() as connection:
        found = {(t, c): (s, z) for t, c, s, z in (await connection.execute(query)).all()}
    assert found == {
        ("persons", "golden_ciphertext"): ("e", ""),
        ("persons", "public_state"): ("x", "l"),
        ("persons", "emitted_facts"): ("x", "l"),
        ("source_records", "claims_ciphertext"): ("e", ""),
        ("source_records", "facts"): ("x", "l"),
        ("source_records", "provenance"): ("x", "l"),
        ("staged_changes", "claims_ciphertext"): ("e", ""),
        ("staged_changes", "facts"): ("x", "l"),
        ("staged_changes", "provenance"): ("x", "l"),
        ("staged_changes", "defects"): ("x", ""),
    }

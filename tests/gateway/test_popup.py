"""`GET /api/v1/counter/popup/{id_number}` and `GET /api/v1/persons/{id_number}`: the gateway on
its own database reads identity and matching over HTTP — their applications in-process through
httpx.ASGITransport, each on its real database, fed the way their own tests feed them (identity's
Harness with change events, matching's handler and evaluator with what identity published)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.id_numbers import mask
from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_gateway.persons import region_of
from canbao_gateway.popup import masked, popup_of
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_identity.app import create as create_identity
from canbao_identity.settings import IdentitySettings
from canbao_matching.app import MatchingSettings
from canbao_matching.app import create as create_matching
from canbao_platform.db import Database
from canbao_platform.local.postgres import free_port
from canbao_platform.service import Resources
from canbao_survey.app import create as create_survey
from canbao_survey.settings import SurveySettings
from tests.gateway.conftest import (
    Clock,
    assert_problem,
    bearer,
    break_the_audit_log,
    serve,
    settings_for,
)
from tests.gateway.people import (
    KUNMING_WUHUA,
    NANMING,
    YUNYAN,
    ZUNYI_HONGHUAGANG,
    citizen,
    legacy_15,
)
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db
from tests.matching.test_ground_truth import feed
from tests.survey.conftest import survey_db as survey_db  # survey's fixtures
from tests.survey.conftest import survey_url as survey_url

POPUP, PERSONS = "/api/v1/counter/popup/", "/api/v1/persons/"
# Born in Zunyi, living (household register) in Guiyang's Nanming district: Nanming's person.
WANG = citizen(ZUNYI_HONGHUAGANG, "19800101", "011")
LI = citizen(NANMING, "19500303", "022")  # deceased
ZHAO = citizen(NANMING, "19900505", "032")  # known to identity, not yet to matching
UNKNOWN = citizen(NANMING, "19700707", "041")


def hukou(number: str, name: str, gender: str, born: date, **more: Any) -> dict[str, Any]:
    return {
        "sfzh": number,
        "xm": name,
        "xb": gender,
        "csrq": born,
        "hjdz_xzqh": NANMING,
        "hjdz": "贵州省贵阳市南明区花果园街道12号",
        "ryzt": "0",
        **more,
    }


def wang_rows() -> list[Any]:
    """Enrolled in the employee pension by his unit, in nothing else; no phone anywhere; the
    insurance system spells his name differently from the household register."""
    return [
        change("hukou.person", hukou(WANG, "王伟", "1", date(1980, 1, 1))),
        change(
            "si_core.ac01",
            {
                "aac001": "P1",
                "aac002": WANG,
                "aac003": "王玮",
                "aac004": "1",
                "aac006": "19800101",
                "aab301": NANMING,
                "aae006": "贵州省贵阳市南明区花果园街道12号",
            },
        ),
        change(
            "si_core.ac02",
            {
                "aac001": "P1",
                "aae140": "110",
                "aab301": NANMING,
                "aab001": "U1",
                "aac008": "1",
                "aac030": date(2005, 1, 1),
            },
        ),
    ]


def li_rows() -> list[Any]:
    return [
        change("hukou.person", hukou(LI, "李秀英", "2", date(1950, 3, 3))),
        change("civil.cremation", {"id": 7, "sfzh": LI, "xm": "李秀英", "swrq": date(2026, 3, 1)}),
    ]


@dataclass
class Registry:
    identity: FastAPI
    matching: FastAPI
    person_ids: dict[str, UUID]
    survey: FastAPI


@pytest.fixture
async def registry(harness: Harness, matching_db: Database, survey_db: Database) -> Registry:
    """Wang and Li through identity and matching; Zhao through identity only (matching has not
    heard of him yet). Survey holds no counter collection waiting for 复核."""
    await harness.apply(wang_rows() + li_rows())
    await feed(matching_db, harness.published)
    await harness.apply([change("hukou.person", hukou(ZHAO, "赵敏", "2", date(1990, 5, 5)))])
    identity, matching = in_process(harness, matching_db)
    ids = {n: await harness.person_of(n) for n in (WANG, LI, ZHAO)}
    return Registry(
        identity,
        matching,
        {n: i for n, i in ids.items() if i is not None},
        survey_in_process(survey_db),
    )


def survey_in_process(survey_db: Database) -> FastAPI:
    """Survey's application on the test's database, its routes only (no consumer, no relay)."""
    settings = SurveySettings(
        CANBAO_ENV="test", database_url=survey_db.url, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9"
    )
    survey = create_survey(settings)
    survey.state.resources = Resources(settings=settings, database=survey_db)
    return survey


def in_process(harness: Harness, matching_db: Database) -> tuple[FastAPI, FastAPI]:
    """Identity's and matching's applications on the tests' databases. Only their routes run (no
    lifespan): no consumers, no broker."""
    identity_settings = IdentitySettings(CANBAO_ENV="test", database_url=harness.db.url)
    identity = create_identity(identity_settings)
    identity.state.resources = Resources(settings=identity_settings, database=harness.db)
    matching_settings = MatchingSettings(CANBAO_ENV="test", database_url=matching_db.url)
    matching = create_matching(matching_settings)
    matching.state.resources = Resources(settings=matching_settings, database=matching_db)
    return identity, matching


@pytest.fixture
async def gateway(
    gateway_url: str, registry: Registry, test_clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    app = create(
        settings_for(gateway_url),
        identity_transport=httpx.ASGITransport(app=registry.identity),
        matching_transport=httpx.ASGITransport(app=registry.matching),
        survey_transport=httpx.ASGITransport(app=registry.survey),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        yield client


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


def clerk(token_for: Any, scope: str = NANMING) -> dict[str, str]:
    return bearer(token_for(Role.COUNTER, scope=scope, username="clerk-07"))


async def test_the_popup_shows_what_is_missing_inaccurate_and_uninsured(
    gateway: httpx.AsyncClient, registry: Registry, token_for: Any, gateway_db: Database
) -> None:
    response = await gateway.get(POPUP + WANG, headers=clerk(token_for))

    assert response.status_code == 200, response.text
    popup = response.json()
    assert popup == {
        "person_id": str(registry.person_ids[WANG]),
        "id_number": WANG[:4] + "**********" + WANG[-4:],
        "name": "王*",
        "deceased": False,
        "statuses": {
            "pension": "11",
            "medical": "92",
            "injury": "92",
            "unemployment": "92",
            "maternity": "92",
        },
        "needs_survey": True,
        "survey_reasons": ["uninsured", "partially_insured", "missing_info", "inaccurate_info"],
        "missing": [{"item": "phone", "code": "AAE005", "label": "联系电话"}],
        "inaccurate": [
            {
                "item": "name",
                "code": "AAC003",
                "label": "姓名",
                "reason": "姓名与户籍登记不一致（社保系统）",
                "source": "si_core",
            }
        ],
        "flags": [],
        "registration": "needs_survey",
        "as_of": "2026-11-23T02:00:00Z",
        "verdict_pending": False,
        "in_scope": True,
        "pending": [],
    }
    assert "王伟" not in response.text and "王玮" not in response.text and WANG not in response.text
    [entry] = await audit_rows(gateway_db)
    assert (entry["staff"], entry["purpose"], entry["outcome"]) == (
        "clerk-07",
        "counter_service",
        "ok",
    )
    assert entry["endpoint"] == "GET /api/v1/counter/popup/{id_number}"
    assert (entry["person_id"], entry["person_region"]) == (registry.person_ids[WANG], NANMING)


@pytest.mark.parametrize(
    "form",
    [legacy_15(ZUNYI_HONGHUAGANG, "800101", "011"), f" {WANG[:6]} {WANG[6:14]} {WANG[14:]} "],
    ids=["15-digit", "spaces"],
)
async def test_any_valid_form_of_the_number_is_the_same_person(
    gateway: httpx.AsyncClient, registry: Registry, token_for: Any, form: str
) -> None:
    response = await gateway.get(POPUP + form, headers=clerk(token_for))
    assert response.status_code == 200, response.text
    assert response.json()["person_id"] == str(registry.person_ids[WANG])


async def test_a_lower_case_x_is_the_same_number(
    gateway: httpx.AsyncClient, harness: Harness, token_for: Any
) -> None:
    number = next(
        n for s in range(100, 200) if (n := citizen(NANMING, "19881212", str(s)))[-1] == "X"
    )
    await harness.apply([change("hukou.person", hukou(number, "钱多多", "1", date(1988, 12, 12)))])
    response = await gateway.get(POPUP + number.lower(), headers=clerk(token_for))
    assert response.status_code == 200, response.text
    assert response.json()["id_number"].endswith("X") and response.json()["verdict_pending"]


async def test_an_invalid_number_says_what_is_wrong(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database
) -> None:
    wrong_check = WANG[:17] + ("0" if WANG[-1] != "0" else "1")
    for path in (POPUP, PERSONS):
        problem = assert_problem(
            await gateway.get(path + wrong_check, headers=clerk(token_for)),
            422,
            "invalid-id-number",
        )
        assert [d["code"] for d in problem["defects"]] == ["bad_check_digit"]
        assert problem["detail"].startswith("校验码应为")
    too_short = assert_problem(
        await gateway.get(POPUP + "52010219", headers=clerk(token_for)), 422, "invalid-id-number"
    )
    assert [d["code"] for d in too_short["defects"]] == ["bad_length"]
    assert await audit_rows(gateway_db) == []  # no one was looked up


async def test_an_unknown_number_is_not_registered_and_the_attempt_audited(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database
) -> None:
    assert_problem(
        await gateway.get(POPUP + UNKNOWN, headers=clerk(token_for)), 404, "not-registered"
    )
    [entry] = await audit_rows(gateway_db)
    assert (entry["outcome"], entry["person_id"], entry["person_region"]) == (
        "not_found",
        None,
        NANMING,
    )
    assert entry["id_number_hash"] and UNKNOWN not in repr(entry)


async def test_the_scope_is_the_household_region_not_the_birthplace_in_the_number(
    gateway: httpx.AsyncClient, registry: Registry, token_for: Any, gateway_db: Database
) -> None:
    """Wang's number starts with Zunyi's code; he lives in Guiyang: Zunyi's clerk may not see
    him, Guiyang's may."""
    zunyi = await gateway.get(POPUP + WANG, headers=clerk(token_for, scope="5203"))
    assert_problem(zunyi, 403, "out-of-scope")
    assert (
        await gateway.get(POPUP + WANG, headers=clerk(token_for, scope="5201"))
    ).status_code == 200
    refused, shown = await audit_rows(gateway_db)
    assert (refused["outcome"], refused["person_region"]) == ("out_of_scope", NANMING)
    assert refused["person_id"] == registry.person_ids[WANG]
    assert shown["outcome"] == "ok"


async def test_a_deceased_person_has_no_statuses(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    popup = (await gateway.get(POPUP + LI, headers=clerk(token_for))).json()
    assert (popup["deceased"], popup["statuses"], popup["needs_survey"]) == (True, None, False)
    assert popup["verdict_pending"] is False and popup["name"] == "李**"


async def test_a_person_matching_has_not_judged_yet_shows_what_identity_knows(
    gateway: httpx.AsyncClient, registry: Registry, token_for: Any
) -> None:
    response = await gateway.get(POPUP + ZHAO, headers=clerk(token_for))
    assert response.status_code == 200, response.text
    popup = response.json()
    assert popup["person_id"] == str(registry.person_ids[ZHAO])
    assert (popup["verdict_pending"], popup["statuses"], popup["registration"]) == (
        True,
        None,
        None,
    )
    # No phone in the household register: identity alone proves the survey reason.
    assert popup["missing"] == [{"item": "phone", "code": "AAE005", "label": "联系电话"}]
    assert (popup["needs_survey"], popup["survey_reasons"]) == (True, ["missing_info"])
    assert popup["as_of"] == "2026-11-23T02:00:00Z"  # now: identity is read live


async def test_the_registration_record_shows_each_field_masked_with_its_source(
    gateway: httpx.AsyncClient, registry: Registry, token_for: Any, gateway_db: Database
) -> None:
    token = token_for(Role.COUNTY, scope="520102", username="approver-1")
    response = await gateway.get(PERSONS + WANG, headers=bearer(token))

    assert response.status_code == 200, response.text
    person = response.json()
    assert person["person_id"] == str(registry.person_ids[WANG])
    assert person["statuses"]["pension"] == "11" and person["name"] == "王*"
    record = person["record"]
    assert record["name"]["value"] == "王*" and record["name"]["source"] == "hukou.person"
    assert record["id_number"]["value"] == WANG[:4] + "**********" + WANG[-4:]
    assert record["birth_date"]["value"] == "1980-**-**"
    assert record["residence_address"]["value"] == "贵州省贵阳市南明区****"
    assert record["household_place"]["value"] == "贵州省贵阳市南明区****"
    assert record["gender"]["value"] == "1" and record["household_region_code"]["value"] == NANMING
    assert all(set(v) == {"value", "source", "observed_at"} for v in record.values())
    for clear in (WANG, "王伟", "王玮", "花果园", "1980-01-01"):
        assert clear not in response.text
    assert (person["household_registered"], person["identity_conflict"]) == (True, False)
    [entry] = await audit_rows(gateway_db)
    assert (entry["staff"], entry["role"], entry["purpose"], entry["outcome"]) == (
        "approver-1",
        "county",
        "registration_record",
        "ok",
    )
    assert entry["endpoint"] == "GET /api/v1/persons/{id_number}"


# The authorisation matrix of these endpoints is test_authorisation.py's.


async def test_without_a_token_nothing_is_read(gateway: httpx.AsyncClient) -> None:
    for path in (POPUP, PERSONS):
        assert_problem(await gateway.get(path + WANG), 401, "unauthenticated")


@pytest.mark.parametrize("away", ["identity", "matching"])
async def test_identity_or_matching_away_is_503_with_its_type(
    gateway_url: str,
    registry: Registry,
    test_clock: Clock,
    token_for: Any,
    away: str,
    gateway_db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    transports = {
        "identity": httpx.ASGITransport(app=registry.identity),
        "matching": httpx.ASGITransport(app=registry.matching),
        "survey": httpx.ASGITransport(app=registry.survey),
    }
    del transports[away]
    app = create(
        settings_for(gateway_url, **{f"{away}_url": nowhere}),
        **{f"{k}_transport": v for k, v in transports.items()},
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        for path in (POPUP, PERSONS):
            problem = assert_problem(
                await client.get(path + WANG, headers=clerk(token_for)), 503, f"{away}-unavailable"
            )
            assert problem["service"] == away
    rows = await audit_rows(gateway_db)
    if away == "identity":  # no one was read
        assert rows == []
    else:  # identity's record was read, and the row is written while matching is asked
        # (persons.py): the log may hold more than the clerk saw, never less.
        assert [r["endpoint"] for r in rows] == [
            f"GET /api/v1{p}{{id_number}}" for p in ("/counter/popup/", "/persons/")
        ]
    assert f"{away}-client" in caplog.text  # the failure is logged, without the person
    assert WANG not in caplog.text and WANG[:6] + WANG[6:14] not in caplog.text


async def test_survey_away_leaves_the_popup_without_its_pending_values(
    gateway_url: str,
    registry: Registry,
    test_clock: Clock,
    token_for: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The popup is identity's and matching's: survey away (its values waiting for 复核
    unknown) leaves `pending` null, and the clerk still serves the person."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    app = create(
        settings_for(gateway_url, survey_url=nowhere),
        identity_transport=httpx.ASGITransport(app=registry.identity),
        matching_transport=httpx.ASGITransport(app=registry.matching),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        response = await client.get(POPUP + WANG, headers=clerk(token_for))
    assert response.status_code == 200, response.text
    assert response.json()["pending"] is None and response.json()["statuses"]
    assert "survey-unavailable" in caplog.text and WANG not in caplog.text


async def test_no_popup_is_shown_when_its_audit_row_cannot_be_written(
    gateway_url: str, registry: Registry, gateway_db: Database, test_clock: Clock, token_for: Any
) -> None:
    """The row is written while matching is asked (persons.py), and still awaited first."""
    await break_the_audit_log(gateway_db)  # say a full disk
    app = create(
        settings_for(gateway_url),
        identity_transport=httpx.ASGITransport(app=registry.identity),
        matching_transport=httpx.ASGITransport(app=registry.matching),
        survey_transport=httpx.ASGITransport(app=registry.survey),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in (POPUP, PERSONS):
                response = await client.get(path + WANG, headers=clerk(token_for))
                body = assert_problem(response, 500, "internal-error")
                assert "statuses" not in body and "name" not in body


def identity_record(**changes: Any) -> dict[str, Any]:
    """Identity's PersonRecord as its API answers, for the pure tests of popup.py."""
    return {
        "person_id": "6f1c0d52-4f3e-4a51-9a55-8a7f3b0b2c11",
        "golden": {"name": {"value": "王伟", "source": "hukou.person"}},
        "missing": [],
        "inaccurate": [],
        "identity_conflict": False,
        "deceased": False,
        "household_registered": True,
        "public_state": None,
        **changes,
    }


def test_a_dead_person_awaiting_a_verdict_needs_no_survey() -> None:
    popup = popup_of(
        identity_record(deceased=True, missing=["phone"]), None, id_number=LI, now=Clock().now
    )
    assert (popup.deceased, popup.needs_survey, popup.survey_reasons) == (True, False, [])
    alive = popup_of(identity_record(), None, id_number=WANG, now=Clock().now)
    assert (alive.needs_survey, alive.verdict_pending, alive.id_number) == (None, True, mask(WANG))


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("phone", "13812345678", "138****5678"),
        ("phone", "0851-86801234", "085******1234"),
        ("birth_date", "1980-01-01", "1980-**-**"),
        ("residence_address", "贵州省遵义市红花岗区老城街道5号", "贵州省遵义市红花岗区****"),
        ("residence_address", "花果园12号", "花果园****"),
        ("gender", "2", "2"),
        ("some_new_field", "secret", "****"),
    ],
)
def test_record_values_are_masked_field_by_field(field: str, value: str, shown: str) -> None:
    assert masked(field, value) == shown


async def test_a_person_registered_with_a_passport_is_asked_by_document_type(
    gateway: httpx.AsyncClient, harness: Harness, token_for: Any
) -> None:
    """Special groups register with another document (domain.md §3): `?document_type=02`; the
    scope is the region of their insurance records."""
    passport = "E12345678"
    row = {
        "psn_no": "M7",
        "certno": passport,
        "psn_cert_type": "02",
        "psn_name": "JOHN SMITH",
        "gend": "1",
        "brdy": date(1980, 1, 1),
        "insutype": "390",
        "psn_insu_stas": "1",
        "insu_admdvs": NANMING,
    }
    await harness.apply([change("medical.insured", row)])
    path = f"{POPUP}{passport}?document_type=02"

    response = await gateway.get(path, headers=clerk(token_for))
    assert response.status_code == 200, response.text
    assert response.json()["person_id"] == str(await harness.person_of(passport, "02"))
    assert response.json()["id_number"] == "E123*5678" and passport not in response.text
    assert_problem(
        await gateway.get(path, headers=clerk(token_for, scope=YUNYAN)), 403, "out-of-scope"
    )
    assert_problem(
        await gateway.get(f"{POPUP}{passport}", headers=clerk(token_for)), 422, "invalid-id-number"
    )


# -- Non-local residents (domain.md §1): no household record here, a number from Yunnan ----------

SUN = citizen(KUNMING_WUHUA, "19880808", "052")  # insured in Nanming
ZHOU = citizen(KUNMING_WUHUA, "19920202", "061")  # a residence permit for Nanming, uninsured


def sun_rows() -> list[Any]:
    """Employed in Nanming and enrolled there in all five insurances."""
    person = {
        "aac001": "P9",
        "aac002": SUN,
        "aac003": "孙丽",
        "aac004": "2",
        "aac006": "19880808",
        "aac009": "12",
        "aac010": "云南省昆明市五华区",
        "aae006": "贵州省贵阳市南明区花果园街道9号",
        "aae005": "13812345678",
        "aac012": "24",
        "aab301": NANMING,
    }
    enrolled = {
        "aac001": "P9",
        "aab301": NANMING,
        "aab001": "U9",
        "aac008": "1",
        "aac030": date(2015, 3, 1),
    }
    medical = {
        "psn_no": "M9",
        "certno": SUN,
        "psn_cert_type": "01",
        "psn_name": "孙丽",
        "gend": "2",
        "brdy": date(1988, 8, 8),
        "insutype": "310",
        "psn_insu_stas": "1",
        "insu_admdvs": NANMING,
        "emp_no": "U9",
        "begndate": date(2015, 3, 1),
    }
    return [
        change("si_core.ac01", person),
        *(
            change("si_core.ac02", {"aae140": kind, **enrolled})
            for kind in ("110", "210", "410", "510")
        ),
        change("medical.insured", medical),
    ]


def zhou_permit(**changes: Any) -> Any:
    row = {
        "jzzh": "JZ5201020001",
        "sfzh": ZHOU,
        "xm": "周强",
        "xb": "1",
        "csrq": date(1992, 2, 2),
        "hjdz_xzqh": KUNMING_WUHUA,
        "jzdz_xzqh": NANMING,
        "jzdz": "贵州省贵阳市南明区花果园街道15号",
        "qfrq": date(2024, 3, 1),
        "yxqz": date(2029, 3, 1),
        "zt": "1",
    }
    return change("hukou.resident_permit", row | changes)


async def test_an_insured_non_local_resident_gets_their_popup_where_they_are_insured(
    gateway: httpx.AsyncClient, harness: Harness, matching_db: Database, token_for: Any
) -> None:
    await harness.apply(sun_rows())
    await feed(matching_db, harness.published)

    response = await gateway.get(POPUP + SUN, headers=clerk(token_for))

    assert response.status_code == 200, response.text
    popup = response.json()
    assert popup["statuses"] == {
        "pension": "11",
        "medical": "21",
        "injury": "30",
        "unemployment": "40",
        "maternity": "50",
    }
    assert (popup["in_scope"], popup["needs_survey"], popup["registration"]) == (
        True,
        False,
        "confirmed",
    )
    # Nanming's, not Kunming's (the number) nor Yunyan's.
    assert_problem(
        await gateway.get(POPUP + SUN, headers=clerk(token_for, scope=YUNYAN)), 403, "out-of-scope"
    )


async def test_an_uninsured_resident_permit_holder_is_in_scope_where_they_live(
    gateway: httpx.AsyncClient, harness: Harness, matching_db: Database, token_for: Any
) -> None:
    """Public security's 外来常住人员: household registered in Kunming, living in Nanming on a
    residence permit, insured nowhere: should be insured (91 pension and medical), needs a
    survey; their region is where they live, their household is non-local (AAC009 52)."""
    await harness.apply([zhou_permit()])
    await feed(matching_db, harness.published)

    response = await gateway.get(POPUP + ZHOU, headers=clerk(token_for))

    assert response.status_code == 200, response.text
    popup = response.json()
    assert popup["statuses"] == {
        "pension": "91",
        "medical": "91",
        "injury": "95",
        "unemployment": "95",
        "maternity": "95",
    }
    assert (popup["in_scope"], popup["needs_survey"]) == (True, True)
    assert {"uninsured", "missing_info"} <= set(popup["survey_reasons"])
    assert {m["item"] for m in popup["missing"]} == {"phone", "household_place"}
    token = token_for(Role.COUNTY, scope=NANMING)
    record = (await gateway.get(PERSONS + ZHOU, headers=bearer(token))).json()["record"]
    region = record["region_code"]
    assert (region["value"], region["source"]) == (NANMING, "hukou.resident_permit")
    assert record["household_region_code"]["value"] == KUNMING_WUHUA
    assert record["household_type"]["value"] == "52"
    assert record["residence_address"]["value"] == "贵州省贵阳市南明区****"
    assert_problem(
        await gateway.get(POPUP + ZHOU, headers=clerk(token_for, scope=YUNYAN)), 403, "out-of-scope"
    )


async def test_a_permit_no_longer_valid_leaves_an_uninsured_holder_out_of_scope(
    gateway: httpx.AsyncClient, harness: Harness, matching_db: Database, token_for: Any
) -> None:
    """Expired or cancelled (zt 2/3): a record that they lived here, not that they still do.
    The clerk of where they lived still finds them, with no statuses."""
    await harness.apply([zhou_permit(zt="3")])
    await feed(matching_db, harness.published)

    popup = (await gateway.get(POPUP + ZHOU, headers=clerk(token_for))).json()

    assert (popup["in_scope"], popup["statuses"], popup["needs_survey"]) == (False, None, False)


def test_a_permit_holders_region_is_where_they_live_before_identity_has_published() -> None:
    """The golden record's household region is in another province: not their region here."""
    record = identity_record(
        household_registered=False,
        golden={
            "household_region_code": {"value": KUNMING_WUHUA},
            "region_code": {"value": NANMING},
        },
    )
    assert region_of(record) == NANMING
    local = identity_record(
        golden={"household_region_code": {"value": YUNYAN}, "region_code": {"value": NANMING}}
    )
    assert region_of(local) == YUNYAN


@pytest.mark.parametrize("number", ["%20", "P" * 41], ids=["blank", "longer than any document"])
async def test_a_document_number_no_document_has_is_invalid_not_an_outage(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database, number: str
) -> None:
    """A number identity's lookup cannot hold (blank, over 40 characters) is the clerk's typing
    error, 422, not `identity-unavailable`: identity is there and answered."""
    for path in (POPUP, PERSONS):
        response = await gateway.get(f"{path}{number}?document_type=02", headers=clerk(token_for))
        assert assert_problem(response, 422, "invalid-document-number")["max_length"] == 40
    assert await audit_rows(gateway_db) == []  # nobody was looked up

"""A generated life as the rows of the source systems (sources.md), with each system's copy of the
number and name as dirty as dirty.py decided.

Keys are namespaced by the seed (five digits) and the person's index, so populations of
different seeds can be appended to one `sources` database: AAC001 and psn_no
`SSSSS` + index (9 digits) + record, xh `G…`, card number `C…`, units `region` + seed + index.
Bigserial ids are left to the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from canbao_stack.simulators import dirty as t
from canbao_stack.simulators.divisions import COUNTY_BY_CODE, PROVINCE_NAME, STREETS
from canbao_stack.simulators.model import WORLD_DATE, Person, Unit

Row = tuple[Any, ...]
# Columns written by COPY, per (schema, table) of sources.md (no bigserial id, no updated_at).
COLUMNS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("si_core", "ab01"): ("aab001", "aab003", "aab004", "aab019", "aab301"),
    ("si_core", "ac01"): ("aac001", "aac002", "aac003", "aac004", "aac006", "aac009", "aac010",
                          "aae006", "aae005", "aac012", "aab301"),
    ("si_core", "ac02"): ("aac001", "aae140", "aab301", "aab001", "aac008", "aac030", "aae030",
                          "aae031"),
    ("si_core", "ac60"): ("aac001", "aae140", "aab301", "aae030", "aae031", "aae116"),
    ("medical", "insured"): ("psn_no", "certno", "psn_cert_type", "psn_name", "gend", "brdy",
                             "insutype", "psn_insu_stas", "insu_admdvs", "emp_no", "begndate",
                             "enddate"),
    ("hukou", "person"): ("sfzh", "xm", "xb", "csrq", "mz", "hjdz_xzqh", "hjdz", "hh", "yhzgx",
                          "ryzt", "zxrq"),
    ("hukou", "resident_permit"): ("jzzh", "sfzh", "xm", "xb", "csrq", "hjdz_xzqh", "jzdz_xzqh",
                                   "jzdz", "qfrq", "yxqz", "zt"),
    ("civil", "cremation"): ("sfzh", "xm", "swrq"),
    ("civil", "dibao"): ("sfzh", "xm", "xzqh", "ksrq", "jsrq"),
    ("education", "student"): ("xh", "sfzjh", "xm", "xxmc", "xd", "xjzt", "xzqh", "rxrq", "byrq"),
    ("justice", "inmate"): ("sfzh", "xm", "rjrq", "cjrq", "jyxzqh"),
    ("employment", "job_registration"): ("aac002", "aac003", "aab001", "aab004", "aab301",
                                         "start_date", "end_date"),
    ("card", "card_holder"): ("aaz500", "aac002", "aac003", "aae005", "bank", "card_status",
                              "issue_date"),
    ("national", "cross_region"): ("aac002", "insurance", "scope", "region", "status", "benefit",
                                   "reported_at"),
}  # fmt: skip
_BANKS: Final = ("中国工商银行", "中国农业银行", "中国建设银行", "中国银行", "贵州银行", "贵阳银行",
                 "贵州省农村信用社")  # fmt: skip
_MEDICAL_STATE: Final = {"1": "1", "2": "2", "3": "4"}  # psn_insu_stas has no 3
_REPORTED: Final = datetime.combine(WORLD_DATE, time(2, 0), UTC)


def unit_row(unit: Unit) -> Row:
    return (unit.number, unit.credit_code, unit.name, unit.kind, unit.county.code)


def person_rows(out: dict[tuple[str, str], list[Row]], person: Person, seed: int) -> None:
    """Append the person's rows of every source table to `out`."""
    key = f"{seed:05d}{person.index:09d}"
    number, name = person.number or "", person.name
    ids, names = person.id_copies, person.name_copies
    gender = "1" if person.male else "2"
    if person.local:
        _household(out, person)
    if person.permit is not None:
        _permit(out, person, f"JZ{key}")
    for record in (0, 1):
        core = [e for e in person.enrolments if not e.medical and e.record == record]
        if core or (record == 0 and person.benefits):
            copy = t.AC01 if record == 0 else t.AC01_SECOND
            _ac01(
                out,
                person,
                f"{key}{record}",
                ids.get(copy, number),
                names.get(copy, name),
                core[0].region if core else person.region,
            )
        for e in core:
            out["si_core", "ac02"].append(
                (
                    f"{key}{record}",
                    e.kind,
                    e.region,
                    e.unit.number if e.unit else None,
                    e.state,
                    e.since,
                    e.since,
                    e.until,
                )
            )
    for b in person.benefits:
        out["si_core", "ac60"].append((f"{key}0", b.kind, b.region, b.since, b.until, b.status))
    cert_type, certno = person.document or ("01", number)
    for e in person.enrolments:
        if e.medical:
            copy = t.MEDICAL if e.record == 0 else t.MEDICAL_SECOND
            out["medical", "insured"].append(
                (
                    f"{key}{e.record}",
                    ids.get(copy, certno),
                    cert_type,
                    names.get(copy, name),
                    gender,
                    person.birth,
                    e.kind,
                    _MEDICAL_STATE[e.state],
                    e.region,
                    e.unit.number if e.unit else None,
                    e.since,
                    e.until,
                )
            )
    if person.phantom is not None:  # another person registered under this number
        other, male, birth = person.phantom
        out["medical", "insured"].append(
            (
                f"{key}9",
                number,
                "01",
                other,
                "1" if male else "2",
                birth,
                "390",
                "1",
                person.region,
                None,
                WORLD_DATE - timedelta(days=400),
                None,
            )
        )
    if person.cremated and person.died is not None:
        out["civil", "cremation"].append((ids.get(t.CREMATION, number), name, person.died))
    if person.dibao is not None:
        out["civil", "dibao"].append(
            (ids.get(t.DIBAO, number), name, person.region, person.dibao, None)
        )
    if (s := person.study) is not None:
        out["education", "student"].append(
            (
                f"G{key}",
                ids.get(t.STUDENT, number),
                name,
                s.school,
                s.level,
                s.status,
                s.region,
                s.since,
                s.until,
            )
        )
    if (c := person.custody) is not None:
        out["justice", "inmate"].append((ids.get(t.INMATE, number), name, c[0], c[1], c[2]))
    for job in person.jobs:
        out["employment", "job_registration"].append(
            (
                ids.get(t.JOBS, number),
                name,
                job.unit.number,
                job.unit.name,
                job.unit.county.code,
                job.since,
                job.until,
            )
        )
    if person.card is not None:
        status, issued = person.card
        out["card", "card_holder"].append(
            (
                f"C{key}",
                ids.get(t.CARD, number),
                names.get(t.CARD, name),
                person.phone,
                _BANKS[person.index % len(_BANKS)],
                status,
                issued,
            )
        )
    reported = _REPORTED - timedelta(days=person.index % 90)
    for x in person.cross_region:
        out["national", "cross_region"].append(
            (
                ids.get(t.CROSS_REGION, number),
                x.insurance,
                x.scope,
                x.region,
                x.status,
                x.benefit,
                reported,
            )
        )


def _household(out: dict[tuple[str, str], list[Row]], person: Person) -> None:
    home = person.household
    assert home is not None and person.number is not None
    cancelled = None
    if person.household_status == "1":
        cancelled = person.died
    elif person.household_status in ("3", "4"):
        cancelled = WORLD_DATE - timedelta(days=30 + person.index % 700)
    out["hukou", "person"].append(
        (
            person.number,
            person.name,
            "1" if person.male else "2",
            person.birth,
            person.ethnicity,
            home.county.code,
            home.address,
            home.number,
            person.relation,
            person.household_status,
            cancelled,
        )
    )


def _permit(out: dict[tuple[str, str], list[Row]], person: Person, number: str) -> None:
    """A residence permit (居住证) for where the person lives, their household elsewhere."""
    assert person.hometown is not None and person.number is not None
    status, issued, until = person.permit  # type: ignore[misc]
    out["hukou", "resident_permit"].append(
        (
            number,
            person.number,
            person.name,
            "1" if person.male else "2",
            person.birth,
            person.hometown.code,
            person.region,
            _residence(person),
            issued,
            until,
            status,
        )
    )


def _residence(person: Person) -> str:
    """The address a non-local person lives at, in the county the registry files them under."""
    county = COUNTY_BY_CODE[person.region]
    street = STREETS[person.index % len(STREETS)]
    return f"{PROVINCE_NAME}{county.prefecture_name}{county.name}{street}{1 + person.index % 300}号"


def _ac01(
    out: dict[tuple[str, str], list[Row]],
    person: Person,
    aac001: str,
    number: str,
    name: str,
    region: str,
) -> None:
    address: str | None
    if person.household is not None:  # AAC009 11/21 local urban/rural
        kind, place = ("11" if person.urban else "21"), person.household.county.full_name
        address = person.household.address
    else:  # 12/22 non-local: they live where they work
        assert person.hometown is not None
        kind, place = ("12" if person.urban else "22"), person.hometown.full_name
        address = _residence(person)
    if person.address_copy != "":
        address = person.address_copy  # blank or a placeholder
    out["si_core", "ac01"].append(
        (
            aac001,
            number,
            name,
            "1" if person.male else "2",
            f"{person.birth:%Y%m%d}",
            kind,
            place,
            address,
            person.phone,
            person.identity_code,
            region,
        )
    )

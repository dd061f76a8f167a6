"""What partner departments send in batches (api.md "Partner departments"): one dataset per
table of theirs that sources.md describes, with its columns, the rules every row must meet, and
the columns that identify a row (so that a row sent again, in this batch or a later one, is the
same record of the registry, not a second one).

The column names are the department's own, as in sources.md, so that the file a department
exports from its system needs no renaming; the registry reads an accepted row exactly like a
change event of that table (identity's adapters). `check_row` is pure: the gateway's and
identity's tests, the bench and identity's intake all use the same rules.

Our convention (api.md leaves it open): a header (CSV) or a key (JSON Lines) the dataset does
not have is refused for the whole batch before any row is read — a misnamed column would
otherwise reject, or silently lose, one column of every row; a row's own defects reject only
that row, with its line number and every reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

from canbao_contracts.id_numbers import PROVINCE_CODES, normalise, validate
from canbao_contracts.text import canonical, forbidden_character


class Department(StrEnum):
    """Partner departments (44号 §24): the `{dept}` of the partner URLs and the
    `partner:<dept>` role of api.md."""

    CIVIL = "civil"  # 民政: cremations, minimum living allowance
    EDUCATION = "education"  # 教育: students
    JUSTICE = "justice"  # 司法: people in custody
    PUBLIC_SECURITY = "public_security"  # 公安: the household register, residence permits
    # 全国参保登记库: the ministry's national registry, which the province keeps informed
    # (44号 Art.10; 41号 §3, §5). It sends no batches: its comparison results arrive as the
    # `national` source (sources.md).
    NATIONAL = "national"


class Kind(StrEnum):
    TEXT = "text"
    ID_NUMBER = "id_number"  # a citizen ID number (GB 11643), any valid form
    DATE = "date"  # YYYY-MM-DD
    REGION = "region"  # a six-digit GB/T 2260 code of a province of China
    CODE = "code"  # one of `codes`


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    max_length: int = 50
    codes: frozenset[str] = frozenset()
    future: bool = False  # a date that may lie ahead (a permit's expiry); others may not


@dataclass(frozen=True, slots=True)
class Dataset:
    department: Department
    name: str  # the table of sources.md
    columns: tuple[Column, ...]
    # What identifies a row (sources.md has a surrogate `id` for some tables; a department's
    # export does not): the same key in a later batch is the same record, updated.
    key: tuple[str, ...]
    # (earlier, later): a row whose `later` date precedes its `earlier` is refused.
    date_order: tuple[tuple[str, str], ...] = ()
    description: str = ""
    # The source system of sources.md whose table this is, when it is not named after the
    # department (public security's tables are `hukou.*`).
    system: str | None = None
    by_name: Mapping[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})

    @property
    def source_table(self) -> str:
        """The source table of sources.md an accepted row is a record of."""
        return f"{self.system or self.department.value}.{self.name}"

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _text(name: str, *, required: bool = False, max_length: int = 50) -> Column:
    return Column(name, Kind.TEXT, required, max_length)


def _date(name: str, *, required: bool = False, future: bool = False) -> Column:
    return Column(name, Kind.DATE, required, future=future)


def _number(name: str) -> Column:
    return Column(name, Kind.ID_NUMBER, required=True, max_length=20)


def _region(name: str, *, required: bool = False) -> Column:
    return Column(name, Kind.REGION, required, max_length=6)


def _code(name: str, codes: str, *, required: bool = False) -> Column:
    return Column(name, Kind.CODE, required, max_length=1, codes=frozenset(codes))


DATASETS: Final[dict[tuple[Department, str], Dataset]] = {
    (d.department, d.name): d
    for d in (
        Dataset(
            Department.CIVIL, "dibao",
            (_number("sfzh"), _text("xm", required=True), _region("xzqh", required=True),
             _date("ksrq", required=True), _date("jsrq")),
            key=("sfzh", "ksrq"), date_order=(("ksrq", "jsrq"),),
            description="最低生活保障对象 (minimum living allowance recipients)",
        ),
        Dataset(
            Department.CIVIL, "cremation",
            (_number("sfzh"), _text("xm", required=True), _date("swrq", required=True)),
            key=("sfzh",), description="火化记录 (cremations: deaths)",
        ),
        Dataset(
            Department.EDUCATION, "student",
            (_text("xh", required=True, max_length=30), _number("sfzjh"),
             _text("xm", required=True), _text("xxmc", max_length=100),
             _code("xd", "12345", required=True), _code("xjzt", "123", required=True),
             _region("xzqh"), _date("rxrq"), _date("byrq")),
            key=("xh",), date_order=(("rxrq", "byrq"),),
            description="学籍 (students)",
        ),
        Dataset(
            Department.JUSTICE, "inmate",
            (_number("sfzh"), _text("xm", required=True), _date("rjrq", required=True),
             _date("cjrq"), _region("jyxzqh")),
            key=("sfzh", "rjrq"), date_order=(("rjrq", "cjrq"),),
            description="在押人员 (people in custody)",
        ),
        Dataset(
            Department.PUBLIC_SECURITY, "person",
            (_number("sfzh"), _text("xm", required=True), _code("xb", "0129"), _date("csrq"),
             _text("mz", max_length=2), _region("hjdz_xzqh", required=True),
             _text("hjdz", max_length=150), _text("hh", max_length=20),
             _text("yhzgx", max_length=2), _code("ryzt", "012349", required=True),
             _date("zxrq")),
            key=("sfzh",), date_order=(("csrq", "zxrq"),), system="hukou",
            description="户籍人口 (the household register)",
        ),
        Dataset(
            Department.PUBLIC_SECURITY, "resident_permit",
            (_text("jzzh", required=True, max_length=30), _number("sfzh"),
             _text("xm", required=True), _code("xb", "0129"), _date("csrq"),
             _region("hjdz_xzqh"), _region("jzdz_xzqh", required=True),
             _text("jzdz", max_length=150), _date("qfrq", required=True),
             _date("yxqz", future=True), _code("zt", "123", required=True)),
            key=("jzzh",), date_order=(("qfrq", "yxqz"),), system="hukou",
            description="居住证 (residence permits of people registered elsewhere)",
        ),
    )
}  # fmt: skip

# The dataset a department's batch is when the request names none: its first above.
DEFAULT_DATASET: Final = {
    dept: next(d for (owner, _), d in DATASETS.items() if owner == dept)
    for dept in Department
    if any(owner == dept for owner, _ in DATASETS)
}


def dataset(department: Department, name: str | None) -> Dataset | None:
    """The dataset a batch of `department` is; None: the department has no such dataset."""
    if name is None:
        return DEFAULT_DATASET.get(department)
    return DATASETS.get((department, name))


class Encoding(StrEnum):
    """How a batch's bytes are read (api.md "Partner departments": UTF-8 or GB18030, declared or
    detected). GB18030 is a superset of GBK and GB2312, so a file declared as either is read as
    GB18030."""

    UTF8 = "utf-8"
    GB18030 = "gb18030"


# The `charset` values of a Content-Type a batch may declare (IANA names, any case).
CHARSETS: Final[dict[str, Encoding]] = {
    "utf-8": Encoding.UTF8,
    "gb18030": Encoding.GB18030,
    "gbk": Encoding.GB18030,
    "gb2312": Encoding.GB18030,
}


class UnsupportedCharset(ValueError):
    def __init__(self, charset: str) -> None:
        super().__init__(f"charset {charset!r} is not one of {sorted(CHARSETS)}")
        self.charset = charset


def read_content_type(header: str) -> tuple[str, Encoding | None]:
    """A batch's Content-Type → its media type (lower case) and the encoding its `charset`
    declares (None: not declared, to be detected); UnsupportedCharset for any other charset."""
    media_type, *parameters = header.split(";")
    declared: Encoding | None = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in CHARSETS:
                raise UnsupportedCharset(charset)
            declared = CHARSETS[charset]
    return media_type.strip().lower(), declared


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row is refused: a stable code for machines, the column, a message in Chinese."""

    code: str
    column: str | None
    message_zh: str

    def text(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"{where}{self.message_zh} ({self.code})"


# Our convention: any dataset's row may say what it is, in the column `op` (as a change event's
# `op`): empty, `c` or `u` — the record as it is now (the default); `d` — the department
# withdraws the record of that key (entered by mistake, or no longer true): only the key columns
# are read, and the registry forgets the record as it would a deleted row of the table.
OP_COLUMN: Final = "op"
WITHDRAW: Final = "d"
_OPS: Final = frozenset({"", "c", "u", WITHDRAW})


def unknown_columns(dataset: Dataset, names: list[str]) -> list[str]:
    """The header's names the dataset does not have (the batch is refused: module docstring)."""
    return [name for name in names if name not in dataset.by_name and name != OP_COLUMN]


def missing_columns(dataset: Dataset, names: list[str]) -> list[str]:
    """The dataset's required columns a CSV header lacks (with an `op` column, the key's only:
    a file of withdrawals need not carry the rest, and a row without them is refused alone)."""
    required = dataset.key if OP_COLUMN in names else dataset.required
    return [name for name in required if name not in names]


def check_row(
    dataset: Dataset, row: Mapping[str, object], *, today: date
) -> tuple[dict[str, str | None], list[Rejection]]:
    """The row as the registry keeps it (text canonical, a number normalised, dates ISO) and
    every reason to refuse it (empty: accepted)."""
    clean: dict[str, str | None] = {}
    reasons: list[Rejection] = []
    for name in row:
        if name not in dataset.by_name and name != OP_COLUMN:
            reasons.append(Rejection("unknown-column", name, "不是此数据集的字段"))
    op = row.get(OP_COLUMN)
    op = op.strip().lower() if isinstance(op, str) else op
    if op not in _OPS and op is not None:
        reasons.append(Rejection("invalid-op", OP_COLUMN, "操作应为空、c、u或d"))
    elif op == WITHDRAW:  # only the key says which record goes
        clean[OP_COLUMN] = WITHDRAW
        for name in dataset.key:
            value, problem = _check_value(dataset.by_name[name], row.get(name), today)
            if problem is None and value is None:
                problem = Rejection("required", name, "撤回须填写主键字段")
            clean[name] = value
            if problem is not None:
                reasons.append(problem)
        return clean, reasons
    for column in dataset.columns:
        value, problem = _check_value(column, row.get(column.name), today)
        clean[column.name] = value
        if problem is not None:
            reasons.append(problem)
    for earlier, later in dataset.date_order:
        first, second = clean.get(earlier), clean.get(later)
        if first is not None and second is not None and second < first:
            reasons.append(Rejection("date-order", later, f"日期早于{earlier}"))
    return clean, reasons


def _check_value(column: Column, raw: object, today: date) -> tuple[str | None, Rejection | None]:
    if raw is not None and not isinstance(raw, str):
        if isinstance(raw, bool) or not isinstance(raw, int):
            return None, Rejection("not-text", column.name, "值应为文本")
        raw = str(raw)  # a JSON number where digits were meant (a code, an ID without X)
    value = canonical(raw).strip() if raw is not None else ""
    if not value:
        if column.required:
            return None, Rejection("required", column.name, "必填项为空")
        return None, None
    if forbidden_character(value) is not None:
        return None, Rejection("forbidden-character", column.name, "含有控制字符或非法字符")
    if len(value) > column.max_length:
        return None, Rejection("too-long", column.name, f"超过{column.max_length}个字符")
    match column.kind:
        case Kind.ID_NUMBER:
            if defects := validate(value, today=today):
                reasons = "；".join(d.message_zh for d in defects)
                return None, Rejection("invalid-id-number", column.name, reasons)
            return normalise(value), None
        case Kind.DATE:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                return None, Rejection("invalid-date", column.name, "日期格式应为YYYY-MM-DD")
            if len(value) != 10:  # fromisoformat also reads 20240101
                return None, Rejection("invalid-date", column.name, "日期格式应为YYYY-MM-DD")
            if day > today and not column.future:
                return None, Rejection("future-date", column.name, "日期晚于今天")
            return value, None
        case Kind.REGION:
            if (
                len(value) != 6
                or not value.isascii()
                or not value.isdigit()
                or value[:2] not in PROVINCE_CODES
            ):
                return None, Rejection("invalid-region", column.name, "不是六位行政区划代码")
            return value, None
        case Kind.CODE:
            if value not in column.codes:
                allowed = "、".join(sorted(column.codes))
                return None, Rejection("invalid-code", column.name, f"代码应为{allowed}之一")
            return value, None
    return value, None

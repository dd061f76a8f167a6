"""The proof of insurance (参保证明, api.md "Self-service"; 44号 §14): a citizen prints, on a
kiosk or from the app, the registry's statuses of their five insurances and what the business
systems hold of their enrolments, as of now; a bank or an employer checks the paper at
`GET /api/v1/verify/{code}` (or by its QR code) without a login.

* The code is 16 random Crockford base32 digits (80 bits, `secrets`): not guessable, and read
  aloud or typed without confusing 0/O or 1/I/L (`normalise` accepts those and any dashes).
* What was printed is kept (tables.certificates, insert-only): the verification answers with
  the statuses *at issue*, the masked name and number and the issue time, never today's record.
* The PDF is made with reportlab, its text in a subset of a real CJK font (GATEWAY_CJK_FONT,
  Debian's fonts-wqy-zenhei) with its Unicode map, so that it can be read back and searched; the
  QR code (reportlab's own, ISO/IEC 18004) holds the verification address.
"""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Final
from uuid import UUID
from xml.sax.saxutils import escape

import sqlalchemy as sa
from pydantic import BaseModel
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from canbao_contracts.codes import Insurance, RegistrationState, StatusCode
from canbao_contracts.events.vocabulary import EnrolmentState
from canbao_gateway.tables import certificates
from canbao_platform.db import Database
from canbao_platform.fonts import registered_cjk_font

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
LENGTH: Final = 16  # 80 bits
_READ_AS: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS: Final = re.compile(r"[\s\-]+")
CHINA: Final = timezone(timedelta(hours=8), "CST")  # printed times are Beijing time
VERIFY_PATH: Final = "/api/v1/verify/"
CHANNEL_LABELS: Final = {"kiosk": "自助一体机", "mobile": "手机应用"}


class PublicRole(StrEnum):
    PUBLIC = "public"


@dataclass(frozen=True)
class Verifier:
    """Whoever checks a certificate (no login): the audit row's actor (staff.Actor); the
    client's address is on the row."""

    username: str = "anonymous"
    role: PublicRole = PublicRole.PUBLIC
    scope: str = ""


VERIFIER: Final = Verifier()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def formatted(code: str) -> str:
    """XXXX-XXXX-XXXX-XXXX, as printed."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise(text: str) -> str | None:
    """The stored form of a code as someone typed it (any case, dashes or spaces, O for 0, I or
    L for 1); None if it cannot be a code."""
    code = _SEPARATORS.sub("", text).upper().translate(_READ_AS)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


class EnrolmentLine(BaseModel):
    """One enrolment as the certificate prints it (matching's EnrolmentFact, with its labels)."""

    insurance: Insurance
    scheme: StatusCode
    scheme_label: str
    state: EnrolmentState
    state_label: str
    first_enrolled_on: str | None
    period_start: str | None
    period_end: str | None


def enrolment_lines(insurance: dict[str, Any]) -> list[EnrolmentLine]:
    """Matching's InsuranceRecord → the certificate's lines, in the order of the insurances."""
    order = list(Insurance)
    lines = [
        EnrolmentLine(
            insurance=Insurance(e["insurance"]),
            scheme=StatusCode(e["scheme"]),
            scheme_label=StatusCode(e["scheme"]).label,
            state=EnrolmentState(e["state"]),
            state_label=EnrolmentState(e["state"]).label,
            first_enrolled_on=e.get("first_enrolled_on"),
            period_start=e.get("period_start"),
            period_end=e.get("period_end"),
        )
        for e in insurance.get("enrolments", [])
    ]
    return sorted(lines, key=lambda line: (order.index(line.insurance), line.scheme.value))


@dataclass(frozen=True)
class Certificate:
    """A certificate as issued (a row of tables.certificates). `name` and `id_number` are in
    clear only on the one being printed (`issue`); read back (`find`) they are masked."""

    code: str
    person_id: UUID
    name: str
    id_number: str
    masked_name: str
    masked_number: str
    registration: RegistrationState | None
    statuses: dict[str, str | None]
    enrolments: list[EnrolmentLine]
    as_of: datetime
    issued_at: datetime
    channel: str
    device: str


async def issue(database: Database, certificate: Certificate, *, id_number_hash: str) -> None:
    """Keep what is about to be printed (insert-only)."""
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.insert(certificates).values(
                code=certificate.code,
                person_id=certificate.person_id,
                id_number_hash=id_number_hash,
                masked_name=certificate.masked_name,
                masked_number=certificate.masked_number,
                registration=certificate.registration.value if certificate.registration else None,
                statuses=certificate.statuses,
                enrolments=[line.model_dump(mode="json") for line in certificate.enrolments],
                as_of=certificate.as_of,
                issued_at=certificate.issued_at,
                channel=certificate.channel,
                device=certificate.device,
            )
        )


async def find(database: Database, code: str) -> Certificate | None:
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(sa.select(certificates).where(certificates.c.code == code))
        ).first()
    if row is None:
        return None
    return Certificate(
        code=row.code,
        person_id=row.person_id,
        name=row.masked_name,
        id_number=row.masked_number,
        masked_name=row.masked_name,
        masked_number=row.masked_number,
        registration=RegistrationState(row.registration) if row.registration else None,
        statuses=dict(row.statuses),
        enrolments=[EnrolmentLine.model_validate(line) for line in row.enrolments],
        as_of=row.as_of,
        issued_at=row.issued_at,
        channel=row.channel,
        device=row.device,
    )


# -- The PDF ---------------------------------------------------------------------------------------


def _style(font: str, size: float, **more: Any) -> ParagraphStyle:
    return ParagraphStyle(
        f"s{size}", fontName=font, fontSize=size, leading=size * 1.4, wordWrap="CJK", **more
    )


def _beijing(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y年%m月%d日 %H:%M")


def _day(value: str | None) -> str:
    return value or "—"


def render_pdf(certificate: Certificate, *, verify_url: str, font_path: str) -> bytes:
    """The printable certificate (A4): the person, the five insurances' statuses, the
    enrolments, the verification code and the QR code of `verify_url`."""
    font = registered_cjk_font(font_path)
    title, body, small = _style(font, 20, alignment=TA_CENTER), _style(font, 11), _style(font, 9)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    registration = certificate.registration.label if certificate.registration else "—"
    person = Table(
        [
            [p("姓名"), p(certificate.name), p("公民身份号码"), p(certificate.id_number)],
            [p("登记状态"), p(registration), p("数据截至"), p(_beijing(certificate.as_of))],
        ],
        colWidths=[24 * mm, 50 * mm, 30 * mm, 66 * mm],
    )
    statuses = [[p("险种"), p("参保状态")]] + [
        [p(insurance.label), p(_status_label(certificate.statuses.get(insurance.value)))]
        for insurance in Insurance
    ]
    header = ["险种", "参保险种", "缴费状态", "首次参保日期", "本期起止日期"]
    enrolments: list[list[Any]] = [[p(text) for text in header]]
    for line in certificate.enrolments:
        period = f"{_day(line.period_start)} 至 {line.period_end or '今'}"
        enrolments.append(
            [
                p(line.insurance.label),
                p(line.scheme_label),
                p(line.state_label),
                p(_day(line.first_enrolled_on)),
                p(period),
            ]
        )
    if len(enrolments) == 1:
        enrolments.append([p("业务系统中无参保记录"), "", "", "", ""])
    qr = QrCodeWidget(verify_url, barLevel="M")
    left, bottom, right, top = qr.getBounds()
    side = 34 * mm
    drawing = Drawing(
        side, side, transform=[side / (right - left), 0, 0, side / (top - bottom), 0, 0]
    )
    drawing.add(qr)
    verification = Table(
        [
            [
                [
                    p(f"验证码：{formatted(certificate.code)}"),
                    p(f"出具时间：{_beijing(certificate.issued_at)}"),
                    p(f"出具渠道：{CHANNEL_LABELS.get(certificate.channel, certificate.channel)}"),
                    p(f"查验网址：{verify_url}", small),
                    p(
                        "扫描右侧二维码或访问查验网址，可核实本证明的真伪及出具时的参保状态。",
                        small,
                    ),
                ],
                drawing,
            ]
        ],
        colWidths=[130 * mm, 40 * mm],
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]
    )
    person.setStyle(
        TableStyle(
            [("GRID", (0, 0), (-1, -1), 0.5, colors.black), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
        )
    )
    status_table = Table(statuses, colWidths=[50 * mm, 120 * mm])
    status_table.setStyle(grid)
    enrolment_table = Table(enrolments, colWidths=[28 * mm, 50 * mm, 26 * mm, 28 * mm, 38 * mm])
    enrolment_table.setStyle(grid)
    verification.setStyle(
        TableStyle(
            [("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("BOX", (0, 0), (-1, -1), 0.5, colors.black)]
        )
    )
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title="参保证明",
        author="全民参保登记",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
    )
    document.build(
        [
            p("社会保险参保证明", title),
            Spacer(1, 8 * mm),
            person,
            Spacer(1, 6 * mm),
            p("一、各险种参保状态（全民参保登记）"),
            Spacer(1, 2 * mm),
            status_table,
            Spacer(1, 6 * mm),
            p("二、参保缴费情况（业务系统记录）"),
            Spacer(1, 2 * mm),
            enrolment_table,
            Spacer(1, 8 * mm),
            verification,
            Spacer(1, 4 * mm),
            p(
                "本证明反映出具时全民参保登记库中的参保状态，此后的变化以查验结果或经办机构记录为准。",
                small,
            ),
        ]
    )
    return buffer.getvalue()


def _status_label(code: str | None) -> str:
    if code is None:
        return "—"
    return f"{StatusCode(code).label}（{code}）"

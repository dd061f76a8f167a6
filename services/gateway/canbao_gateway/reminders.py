"""What a citizen is reminded of on a kiosk or in the app (44号 §14, §23: self-service channels
remind people what to complete or correct; api.md "Self-service": `reminders`), in words a
citizen understands, from matching's verdict and identity's gaps (the popup, popup.py). Pure: no
HTTP, no database.

The texts explain what a status means for the person and where to go about it; they quote the
law only where it tells the person what someone else owes them (the employer's duty to enrol,
社会保险法 第五十八条). Items a citizen may correct here (`SELF_CORRECTABLE`) are offered here;
the others need a document seen at a counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from canbao_contracts.codes import FlagType, Insurance, RegistrationItem, RegistrationState
from canbao_contracts.codes import StatusCode as Code
from canbao_gateway.popup import Popup

# Items a citizen may correct on a kiosk or in the app, to be confirmed by the agency (初审/审定).
# Identity items (name, number, gender, birth date) and the household register's items need the
# document itself, seen by a clerk: at a counter (api.md "Self-service"; 44号 Art.21).
SELF_CORRECTABLE: Final = frozenset(
    {
        RegistrationItem.PHONE,
        RegistrationItem.RESIDENCE_ADDRESS,
        RegistrationItem.EMPLOYMENT_STATUS,
        RegistrationItem.UNIT_NAME,
        RegistrationItem.PERSONAL_IDENTITY,
    }
)

# Where a citizen resumes or joins an insurance, as the self-service channels say it.
AGENCY: Final = "参保地社会保险经办机构（或乡镇（街道）人力资源社会保障服务平台）"
HERE_COMPLETE: Final = "可在此直接补充，经办机构确认后生效。"
HERE_CORRECT: Final = "可在此更正，经办机构确认后生效。"
AT_COUNTER: Final = "请携带居民身份证件到社保经办窗口办理。"


class ReminderKind(StrEnum):
    REGISTRATION = "registration"  # where the registration stands
    INTERRUPTED = "interrupted"  # 94: payment interrupted
    UNINSURED = "uninsured"  # 91: should be insured, is not
    EMPLOYER_NOT_ENROLLED = "employer_not_enrolled"  # 92: the employer did not enrol them
    DUPLICATE_INSURANCE = "duplicate_insurance"
    DUPLICATE_BENEFITS = "duplicate_benefits"
    COMPLETE_ITEM = "complete_item"  # a required item is missing
    CORRECT_ITEM = "correct_item"  # an item is inaccurate
    CORRECTION_PENDING = "correction_pending"  # the person's correction awaits the agency


@dataclass(frozen=True, slots=True)
class Reminder:
    kind: ReminderKind
    text: str
    insurance: Insurance | None = None
    item: RegistrationItem | None = None
    self_service: bool = False
    """Whether the person can act on it here (complete or correct the item on the kiosk)."""


# What an interrupted insurance means for the person, and how to resume it (94).
_INTERRUPTED: Final = {
    Insurance.PENSION: "中断缴费期间不计算缴费年限，会影响今后按月领取养老金。已就业的，请单位为您"
    "办理续保；灵活就业人员或城乡居民，可到{agency}或通过手机APP办理续缴。",
    Insurance.MEDICAL: "中断缴费后，医疗费用可能暂时不能按规定报销。已就业的，请单位为您办理续保；"
    "城乡居民请在集中缴费期内缴纳医疗保险费，或到{agency}咨询。",
    Insurance.INJURY: "中断期间发生工伤，可能无法享受工伤保险待遇。工伤保险由用人单位缴费，"
    "请与单位联系续保。",
    Insurance.UNEMPLOYMENT: "中断缴费期间不计算缴费时间，会影响失业后领取失业保险金。"
    "请与单位联系续保。",
    Insurance.MATERNITY: "中断期间可能不能享受生育保险待遇。生育保险由用人单位缴费，"
    "请与单位联系续保。",
}
# What joining means, for someone who should be insured and is not (91).
_UNINSURED: Final = {
    Insurance.PENSION: "城乡居民可到户籍地或居住地的{agency}办理城乡居民基本养老保险参保登记；"
    "灵活就业人员可办理企业职工基本养老保险参保登记。",
    Insurance.MEDICAL: "城乡居民可在集中缴费期内参加城乡居民基本医疗保险；灵活就业人员可参加职工"
    "基本医疗保险。详情请咨询{agency}。",
    Insurance.INJURY: "工伤保险由用人单位为职工缴纳，请向单位咨询。",
    Insurance.UNEMPLOYMENT: "失业保险由用人单位和职工共同缴纳，请向单位咨询。",
    Insurance.MATERNITY: "生育保险由用人单位为职工缴纳，请向单位咨询。",
}


def reminders_of(popup: Popup, *, pending_items: frozenset[RegistrationItem]) -> list[Reminder]:
    """The person's reminders, most pressing first: the insurances to resume or join, the items
    to complete or correct, then where their own corrections stand. `pending_items` are items of
    corrections the person made that the agency has not decided on yet: not asked for again."""
    if popup.deceased:
        return []
    found: list[Reminder] = []
    found.extend(_insurance_reminders(popup))
    for gap in popup.missing:
        if gap.item in pending_items:
            continue
        here = gap.item in SELF_CORRECTABLE
        where = HERE_COMPLETE if here else AT_COUNTER
        found.append(
            Reminder(
                ReminderKind.COMPLETE_ITEM,
                f"您的登记信息缺少“{gap.label}”。{where}",
                item=gap.item,
                self_service=here,
            )
        )
    for wrong in popup.inaccurate:
        if wrong.item in pending_items:
            continue
        here = wrong.item in SELF_CORRECTABLE
        where = HERE_CORRECT if here else AT_COUNTER
        found.append(
            Reminder(
                ReminderKind.CORRECT_ITEM,
                f"您登记的“{wrong.label}”可能有误：{wrong.reason}。{where}",
                item=wrong.item,
                self_service=here,
            )
        )
    if pending_items:
        labels = "、".join(item.label for item in sorted(pending_items, key=_item_order))
        text = f"您提交的{labels}更正正在等待经办机构确认，确认后登记信息将更新。"
        found.append(Reminder(ReminderKind.CORRECTION_PENDING, text))
    found.append(_registration(popup))
    return found


def _insurance_reminders(popup: Popup) -> list[Reminder]:
    found: list[Reminder] = []
    if popup.statuses is not None:
        for insurance, code in popup.statuses.items():
            if code is Code.INTERRUPTED:
                text = f"您的{insurance.label}处于“中断缴费”状态。" + _INTERRUPTED[
                    insurance
                ].format(agency=AGENCY)
                found.append(Reminder(ReminderKind.INTERRUPTED, text, insurance=insurance))
            elif code is Code.UNINSURED_INDIVIDUAL:
                text = (
                    f"您目前未参加{insurance.label}（{code.label}），按规定应当参保。"
                    + _UNINSURED[insurance].format(agency=AGENCY)
                )
                found.append(Reminder(ReminderKind.UNINSURED, text, insurance=insurance))
            elif code is Code.UNINSURED_BY_EMPLOYER:
                text = (
                    f"您已在单位就业，但单位尚未为您办理{insurance.label}参保登记。用人单位应当"
                    "自用工之日起三十日内为职工办理社会保险登记（《社会保险法》第五十八条）。"
                    f"请与单位联系，或向{AGENCY}反映。"
                )
                found.append(
                    Reminder(ReminderKind.EMPLOYER_NOT_ENROLLED, text, insurance=insurance)
                )
    for flag in popup.flags:
        if flag.type is FlagType.DUPLICATE_INSURANCE:
            text = (
                f"您同时在多处或多个险种制度参加了{flag.insurance.label}（重复参保），可能重复"
                f"缴费。请到{AGENCY}核实，保留一处参保关系。"
            )
            found.append(Reminder(ReminderKind.DUPLICATE_INSURANCE, text, insurance=flag.insurance))
        elif flag.type is FlagType.DUPLICATE_BENEFITS:
            text = (
                f"您的{flag.insurance.label}待遇在多处发放（重复享受待遇）。请尽快到{AGENCY}"
                "核实，重复领取的待遇需要退还。"
            )
            found.append(Reminder(ReminderKind.DUPLICATE_BENEFITS, text, insurance=flag.insurance))
    return found


def _registration(popup: Popup) -> Reminder:
    if popup.registration is None:
        text = "您的参保信息正在更新中，请稍后再查询。"
    elif popup.registration is RegistrationState.NEEDS_SURVEY:
        text = (
            "您的全民参保登记信息还需要核实（需调查登记）。请按以上提示补充或更正信息；"
            "工作人员也可能上门或电话联系您核实。"
        )
    elif popup.registration is RegistrationState.VERIFIED:
        text = "您的全民参保登记信息已核实登记。"
    else:
        text = "您的全民参保登记信息已确认，无需办理。"
    return Reminder(ReminderKind.REGISTRATION, text)


def _item_order(item: RegistrationItem) -> int:
    return list(RegistrationItem).index(item)

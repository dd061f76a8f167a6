"""The events' own words where `canbao_contracts.codes` has no table: canonical states that
several sources spell differently, and the registry's channels and comparison levels."""

from __future__ import annotations

from canbao_contracts.codes import LabelledCode


class EnrolmentState(LabelledCode):
    """An enrolment's state, whatever the source's codes: si_core AAC008 (1/2/3), the medical
    platform's psn_insu_stas (1/2/4), the comparison's status (1/2) (sources.md)."""

    PAYING = "paying", "参保缴费"
    SUSPENDED = "suspended", "暂停缴费"
    TERMINATED = "terminated", "终止参保"


class StudyLevel(LabelledCode):
    """education.student.xd: the level of the school (sources.md)."""

    PRIMARY = "1", "小学"
    JUNIOR_SECONDARY = "2", "初中"
    SENIOR_SECONDARY = "3", "高中"
    VOCATIONAL = "4", "中职"
    HIGHER = "5", "高等教育"


class ComparisonScope(LabelledCode):
    """Which comparison found an enrolment or confirmed a registration (domain.md §2.1, §6
    columns 3, 5 and 6): the local insurance systems, the provincial or the national registry."""

    LOCAL = "local", "本地比对"
    PROVINCE = "province", "省内异地比对"
    NATIONAL = "national", "全国比对"


class Channel(LabelledCode):
    """Where a collection was made (domain.md §2.2-2.4, api.md "Who calls")."""

    COUNTER = "counter", "业务经办窗口"
    KIOSK = "kiosk", "自助一体机"
    MOBILE = "mobile", "移动应用"
    SURVEY = "survey", "入户调查"
    PLATFORM = "platform", "基层平台变更登记"  # 44号 Art.21: change registration at the platform
    PARTNER = "partner", "部门数据交换"

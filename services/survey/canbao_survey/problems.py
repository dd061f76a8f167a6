"""Survey's failures, each with its stable problem type (canbao_platform.problems). The gateway
passes them on to its clients unchanged, so the types are part of the public API too. (Invalid
collected items: `canbao_platform.problems.InvalidItems`, shared with the gateway.)"""

from __future__ import annotations

from canbao_platform.problems import Problem


class IdempotencyKeyReused(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "idempotency-key-reused",
            "同一幂等键已用于另一次不同的提交 (idempotency key reused with other data)",
        )


class CollectionNotFound(Problem):
    def __init__(self) -> None:
        super().__init__(404, "collection-not-found", "采集记录不存在 (no such collection)")


# -- The household survey (api.md "Survey") -------------------------------------------------------


class TaskNotFound(Problem):
    def __init__(self) -> None:
        super().__init__(404, "task-not-found", "调查任务不存在 (no such survey task)")


class OutOfScope(Problem):
    def __init__(self, region_code: str) -> None:
        super().__init__(
            403,
            "out-of-scope",
            "不在本人管辖区域内 (outside the caller's region)",
            f"区划 {region_code} 不在授权范围内",
            region_code=region_code,
        )


class TaskChanged(Problem):
    """A submission or decision for a task that is no longer where the caller saw it (reassigned,
    closed, already decided): the task's current state, so the app can show it; nothing sent is
    lost (a late submission is kept, unattached, with `submission_id`)."""

    def __init__(self, task: dict[str, object], **extensions: object) -> None:
        super().__init__(
            409,
            "task-changed",
            "调查任务状态已变化 (the survey task has changed)",
            f"任务当前状态：{task['state_label']}",
            task=task,
            **extensions,
        )


class MakerChecker(Problem):
    def __init__(
        self,
        detail: str = "初审与审定须由不同于调查员和初审人的人员办理（经办规程第十七、十八条）",
    ) -> None:
        super().__init__(
            409, "maker-checker", "不得审核本人提交或已审核过的调查结果 (maker-checker)", detail
        )


# -- 复核 of counter collections (recheck.py) ------------------------------------------------------

RECHECK_MAKER_CHECKER = "柜台采集须由采集人以外的复核人复核（41号文表4：复核人 AAE014）"


class CollectionChanged(Problem):
    """A 复核 of a collection that is no longer waiting for one (another reviewer decided it
    meanwhile): where it stands now, so the list can show it; nothing is applied twice."""

    def __init__(self, collection: dict[str, object]) -> None:
        super().__init__(
            409,
            "collection-changed",
            "采集记录状态已变化，无需复核 (the collection is no longer waiting for review)",
            f"采集记录当前状态：{collection['state_label']}",
            collection=collection,
        )


class NeedsIndividualReview(Problem):
    """A collection sent in a day's batch that holds more than contact details."""

    def __init__(self, items: list[str], labels: list[str]) -> None:
        super().__init__(
            422,
            "needs-individual-review",
            "含身份信息等项目的采集须逐条复核，不能批量通过 (needs an individual review)",
            "批量复核只适用于联系电话、居住地址、就业状态、工作单位；请逐条复核："
            + "、".join(labels),
            items=items,
        )


class ClientIdReused(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "client-id-reused",
            "同一 client_id 已用于另一调查任务 (client_id used for another task)",
        )


class SurveyorNotInRoster(Problem):
    def __init__(self, usernames: list[str]) -> None:
        super().__init__(
            422,
            "surveyor-not-in-roster",
            "调查员不在本县调查员名册中 (not on the county's surveyor roster)",
            "、".join(usernames),
            usernames=usernames,
        )


class CertificateNumberTaken(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "certificate-number-taken",
            "调查证号已登记给其他调查员 (certificate number already on the roster)",
        )


class VisitInFuture(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "visited-in-future",
            "调查时间晚于当前时间 (visited_at is in the future)",
            "请检查设备时间后重新同步",
        )


class IdentityUnavailable(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(
            503,
            "identity-unavailable",
            "参保登记库暂不可用，名单未生成 (identity unavailable; no list made)",
            detail,
        )


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "invalid-cursor",
            "分页游标无效 (invalid cursor)",
            "请从第一页重新查询 (start again from the first page)",
        )


class UsernameMismatch(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "username-mismatch",
            "路径与请求体中的用户名不一致 (username in path and body differ)",
        )


class SelfServiceContactFromStaff(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "invalid-contact",
            "调查方式应为入户或电话 (a surveyor reaches the person by visit or phone)",
            "“自助”只用于本人在自助一体机或手机上提交的更正",
        )


class ChangePending(Problem):
    """A change registration for a person whose earlier change still waits for its review."""

    def __init__(self, task: dict[str, object]) -> None:
        super().__init__(
            409,
            "change-pending",
            "该人员已有待审核的变更登记 (a change for this person is waiting for review)",
            f"待审核的变更登记当前状态：{task['state_label']}，审核完成后再登记",
            task=task,
        )


# -- Sampling checks (Chongqing plan 四(二)) ---------------------------------------------------


class SampleNotFound(Problem):
    def __init__(self) -> None:
        super().__init__(404, "sample-not-found", "抽查样本不存在 (no such sample)")


class RecordNotInSample(Problem):
    def __init__(self) -> None:
        super().__init__(
            404, "record-not-in-sample", "该记录不在本次抽查样本中 (record not in the sample)"
        )


class AlreadyChecked(Problem):
    def __init__(self, check: dict[str, object]) -> None:
        super().__init__(
            409,
            "already-checked",
            "该记录已复查 (the record has been re-checked already)",
            "每条抽查记录只复查一次",
            check=check,
        )


class CheckerIsMaker(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "maker-checker",
            "不得复查本人采集或审核过的记录 (maker-checker)",
            "抽查复查须由未经办、未审核该记录的人员办理",
        )


class InvalidPeriod(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "invalid-period",
            "起止日期无效 (the period is invalid)",
            "起始日期不得晚于截止日期，且期间不超过一年",
        )

"""Survey's failures, each with its stable problem type (canbao_platform.problems). The gateway
passes them on to its clients unchanged, so the types are part of the public API too."""

from __future__ import annotations

from canbao_contracts.collected_items import ItemDefect
from canbao_platform.problems import Problem


class InvalidItems(Problem):
    """Collected values that break the rules; `errors` names each field (`item`, `code`, `label`,
    `kind`, messages in Chinese and English), never its value."""

    def __init__(self, defects: list[ItemDefect]) -> None:
        detail = "；".join(defect.message_zh for defect in defects)
        super().__init__(
            422,
            "invalid-items",
            "采集信息有误 (invalid collected items)",
            detail,
            errors=[defect.as_dict() for defect in defects],
        )


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

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

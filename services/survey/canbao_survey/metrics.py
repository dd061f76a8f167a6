"""The survey's progress as metrics (issue's "Progress": survey rate per division, open tasks per
team), for the dashboards an operator watches: one GROUP BY over the tasks every `interval_s`,
read by OpenTelemetry's observable gauges between refreshes (a scrape never queries the
database).

Gauges, by county (`region_code`): canbao.survey.needing_survey, canbao.survey.surveyed,
canbao.survey.approved, canbao.survey.survey_rate (surveyed ÷ needing, survey_views.progress's
rule; Qinghai's goal ≥ 0.9); by team (`team`, usernames joined with ","):
canbao.survey.open_tasks (assigned, not yet submitted).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_survey import survey_views

log = logging.getLogger(__name__)


class ProgressMetrics(BackgroundLoop):
    """A component: refreshes the survey's progress and serves it to the gauges."""

    name = "survey.progress"

    def __init__(self, database: Database, *, interval_s: float = 60.0) -> None:
        super().__init__()
        self._database, self._interval_s = database, interval_s
        self.progress: dict[str, Any] | None = None
        self._refreshed_at: datetime | None = None
        _gauges().add(self)

    def health(self) -> dict[str, Any]:
        at = self._refreshed_at.isoformat() if self._refreshed_at else None
        return {"ready": True, "refreshed_at": at}

    async def refresh(self) -> None:
        self.progress = await survey_views.progress(self._database, "")
        self._refreshed_at = datetime.now(UTC)

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.refresh()
            except Exception:  # a metric is not worth stopping for; the next round retries
                log.exception("survey progress could not be refreshed")
            await self.sleep(self._interval_s)


@cache
def _gauges() -> weakref.WeakSet[ProgressMetrics]:
    """The process's instruments, created once (OpenTelemetry keeps the first instrument of a
    name), reading every live ProgressMetrics."""
    sources: weakref.WeakSet[ProgressMetrics] = weakref.WeakSet()

    def by_region(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for source in list(sources):
                for row in (source.progress or {}).get("regions", []):
                    if row[field] is not None:
                        yield Observation(row[field], {"region_code": row["region_code"]})

        return observe

    def by_team(options: CallbackOptions) -> Iterable[Observation]:
        for source in list(sources):
            for row in (source.progress or {}).get("open_tasks_by_team", []):
                yield Observation(row["open_tasks"], {"team": ",".join(row["team"])})

    meter = metrics.get_meter("canbao.survey")
    for name, unit, description, observe in (
        (
            "canbao.survey.needing_survey",
            "{person}",
            "People of a county needing a survey",
            by_region("needing_survey"),
        ),
        (
            "canbao.survey.surveyed",
            "{person}",
            "People of a county surveyed (submitted on)",
            by_region("surveyed"),
        ),
        (
            "canbao.survey.approved",
            "{person}",
            "Survey submissions approved (审定)",
            by_region("approved"),
        ),
        (
            "canbao.survey.survey_rate",
            "1",
            "Surveyed ÷ needing survey, per county",
            by_region("survey_rate"),
        ),
        (
            "canbao.survey.open_tasks",
            "{task}",
            "Tasks assigned to a team, not yet submitted",
            by_team,
        ),
    ):
        meter.create_observable_gauge(name, callbacks=[observe], unit=unit, description=description)
    return sources

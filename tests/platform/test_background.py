"""canbao_platform.background: how every loop of the service shell stops — it finishes the unit
of work under way, a sleep ends at once, a loop stuck past its timeout is cancelled — and that
it starts once and again after a stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from canbao_platform.background import BackgroundLoop

# The tests' own bound on waiting for a loop to do something: a guard against a hang, never a
# measure of speed.
GUARD_S = 10.0


class Counting(BackgroundLoop):
    """Units of work that take `unit_s` (awaiting `release` when given), a sleep between them."""

    name = "counting"

    def __init__(self, *, sleep_s: float = 3600.0, release: asyncio.Event | None = None) -> None:
        super().__init__()
        self.sleep_s, self.release = sleep_s, release
        self.started = asyncio.Event()
        self.wake = asyncio.Event()
        self.units = 0
        self.finished: asyncio.Queue[int] = asyncio.Queue()  # each unit's number, as it ends
        self.returned = False  # run() came to its end rather than being cancelled
        self.cancelled_in_unit = False

    async def run(self) -> None:
        while not self.stopping:
            self.started.set()
            try:
                if self.release is not None:
                    await self.release.wait()
                self.units += 1
                self.finished.put_nowait(self.units)
            except asyncio.CancelledError:
                self.cancelled_in_unit = True
                raise
            self.wake.clear()
            await self.sleep(self.sleep_s, self.wake)
        self.returned = True


async def test_stop_lets_the_unit_under_way_finish() -> None:
    release = asyncio.Event()
    loop = Counting(release=release)
    await loop.start()
    await asyncio.wait_for(loop.started.wait(), GUARD_S)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)
    assert loop.stopping and not stopping.done()  # waiting for the unit
    release.set()
    await asyncio.wait_for(stopping, GUARD_S)
    assert loop.units == 1 and loop.returned and not loop.cancelled_in_unit
    assert not loop.running


async def test_a_sleep_ends_when_the_loop_is_asked_to_stop() -> None:
    loop = Counting(sleep_s=3600.0)
    loop.stop_timeout_s = 3600.0  # only the sleep ending lets stop() return before the guard
    await loop.start()
    await asyncio.wait_for(loop.started.wait(), GUARD_S)
    await asyncio.wait_for(loop.stop(), GUARD_S)
    assert loop.returned and loop.units == 1


async def test_a_wake_ends_a_sleep_early() -> None:
    loop = Counting(sleep_s=3600.0)
    await loop.start()
    try:
        assert await asyncio.wait_for(loop.finished.get(), GUARD_S) == 1
        loop.wake.set()
        assert await asyncio.wait_for(loop.finished.get(), GUARD_S) == 2
    finally:
        await loop.stop()


async def test_a_loop_stuck_past_its_timeout_is_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    loop = Counting(release=asyncio.Event())  # never released
    loop.stop_timeout_s = 0.05
    await loop.start()
    await asyncio.wait_for(loop.started.wait(), GUARD_S)
    with caplog.at_level(logging.WARNING, logger="canbao_platform.background"):
        await asyncio.wait_for(loop.stop(), GUARD_S)
    assert loop.cancelled_in_unit and not loop.returned and loop.units == 0
    assert "counting: still busy" in caplog.text


async def test_it_starts_once_and_again_after_a_stop() -> None:
    loop = Counting(sleep_s=3600.0)
    await loop.start()
    first = loop._task
    await loop.start()
    assert loop._task is first
    await asyncio.wait_for(loop.started.wait(), GUARD_S)
    await loop.stop()
    assert not loop.running and loop.stopping
    loop.started.clear()
    await loop.start()
    await asyncio.wait_for(loop.started.wait(), GUARD_S)
    assert loop.running and not loop.stopping and loop.units == 2
    await loop.stop()


class Failing(BackgroundLoop):
    name = "failing"

    async def run(self) -> None:
        raise RuntimeError("the database refused")


async def test_a_loop_that_failed_is_not_running_and_stops_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = Failing()
    await loop.start()
    assert loop._task is not None
    await asyncio.wait({loop._task}, timeout=GUARD_S)
    assert not loop.running  # the service reports not ready
    with caplog.at_level(logging.ERROR, logger="canbao_platform.background"):
        await loop.stop()
    assert "failing: had ended with RuntimeError" in caplog.text

"""Slack's pace per channel: a burst, then the rate, in order; a 429 holds the whole channel;
several workers share it (on a clock the test moves)."""

from __future__ import annotations

import asyncio

from activities.channel_pace import ChannelPace


class FakeTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def paced(rate: float = 1.0, burst: int = 3) -> tuple[ChannelPace, FakeTime]:
    time = FakeTime()
    return ChannelPace(rate, burst, clock=time.clock, sleep=time.sleep), time


async def turns(pace: ChannelPace, time: FakeTime, channels: list[str]) -> list[tuple[str, float]]:
    """Everyone asks at once; when (fake seconds) each got its turn, in the order they got it."""
    got: list[tuple[str, float]] = []

    async def one(index: int, channel: str) -> None:
        await pace.turn(channel)
        got.append((f"{channel}{index}", time.now))

    await asyncio.gather(*(one(i, c) for i, c in enumerate(channels)))
    return got


async def test_a_burst_then_one_a_second_first_come_first_served() -> None:
    pace, time = paced(rate=1.0, burst=3)
    got = await turns(pace, time, ["#a"] * 8)
    assert [name for name, _ in got] == [f"#a{i}" for i in range(8)]
    assert [round(at, 6) for _, at in got] == [0, 0, 0, 1, 2, 3, 4, 5]


async def test_channels_keep_their_own_pace() -> None:
    pace, time = paced(rate=1.0, burst=1)
    got = dict(await turns(pace, time, ["#a", "#b", "#a", "#b"]))
    assert got["#a0"] == got["#b1"] == 0
    assert got["#a2"] == got["#b3"] == 1


async def test_a_retry_after_holds_every_post_to_the_channel_and_spends_the_burst() -> None:
    pace, time = paced(rate=1.0, burst=3)
    await pace.turn("#a")
    pace.hold("#a", 2.0)
    await pace.turn("#b")  # another channel is not held
    assert time.now == 0
    got = await turns(pace, time, ["#a", "#a", "#a"])
    assert [at for _, at in got] == [2.0, 3.0, 4.0]


async def test_a_saved_burst_refills_at_the_rate_and_no_further() -> None:
    pace, time = paced(rate=2.0, burst=2)
    await turns(pace, time, ["#a"] * 2)
    time.now += 60  # a quiet minute saves no more than the burst
    got = await turns(pace, time, ["#a"] * 4)
    assert [at - 60 for _, at in got] == [0, 0, 0.5, 1.0]


async def test_workers_sharing_the_channel_each_keep_their_part() -> None:
    pace, time = paced(rate=1.0, burst=3)
    pace.share(2)
    assert (pace.own_rate, pace.own_burst) == (0.5, 1)
    got = await turns(pace, time, ["#a"] * 3)
    assert [at for _, at in got] == [0, 2.0, 4.0]
    pace.share(0)  # never below one: this worker itself
    assert (pace.own_rate, pace.own_burst) == (1.0, 3)


async def test_no_rate_means_unpaced() -> None:
    pace, time = paced(rate=0.0, burst=1)
    got = await turns(pace, time, ["#a"] * 5)
    assert {at for _, at in got} == {0}

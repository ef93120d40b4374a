"""Slack's pace, kept per channel by everything in this worker that posts there.

Slack allows about one message per second per channel, with short bursts, and answers 429 with
`Retry-After` beyond it; the limit is shared by every sender. So every post to a channel from
this process takes its turn here: a token bucket (`rate` a second, `burst` at most at once),
first come first served, and a 429's `Retry-After` holds *every* post to that channel, not only
the one that met it.

Several activity workers post to the same channels: each keeps `1/n` of the channel's pace,
`n` being the activity workers Temporal reports polling the task queue (`share`, kept up to
date by `worker.channel_share`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class _Channel:
    tokens: float
    updated: float
    not_before: float = 0.0
    """A 429's Retry-After: nobody posts here before this instant (monotonic)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ChannelPace:
    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.workers = 1
        """How many activity workers share the channels' pace (this one included)."""
        self._clock = clock
        self._sleep = sleep
        self._channels: dict[str, _Channel] = {}

    def share(self, workers: int) -> None:
        """`workers` activity workers post to the same channels: this one keeps its part."""
        self.workers = max(1, workers)

    @property
    def own_rate(self) -> float:
        return self.rate / self.workers

    @property
    def own_burst(self) -> int:
        return max(1, self.burst // self.workers)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(
                tokens=float(self.own_burst), updated=self._clock()
            )
        return channel

    async def turn(self, name: str) -> float:
        """Wait for this channel's next turn; how long it waited (seconds)."""
        channel = self._channel(name)
        began = self._clock()
        if self.rate <= 0:  # unpaced, but a Retry-After still holds the channel
            if channel.not_before > began:
                await self._sleep(channel.not_before - began)
            return self._clock() - began
        async with channel.lock:  # first come, first served
            while True:
                now = self._clock()
                rate, burst = self.own_rate, self.own_burst
                saved = max(0.0, now - channel.updated) * rate  # nothing saved while held
                channel.tokens = min(burst, channel.tokens + saved)
                channel.updated = max(now, channel.updated)
                wait = channel.not_before - now
                if wait <= 0 and channel.tokens >= 1:
                    channel.tokens -= 1
                    return self._clock() - began
                if wait <= 0:
                    wait = (1 - channel.tokens) / rate
                await self._sleep(wait)

    def hold(self, name: str, seconds: float) -> None:
        """Slack said `Retry-After: seconds`: the whole channel waits, then one post, then the
        rate (no burst saved up meanwhile)."""
        channel = self._channel(name)
        channel.not_before = max(channel.not_before, self._clock() + seconds)
        channel.tokens, channel.updated = 1.0, channel.not_before

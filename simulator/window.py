"""Time-weighted average of the treatment share over a sliding window."""

from __future__ import annotations


class ShareHistory:
    """The treatment share (0..1) over time, as a step function of change points.

    Before the first change point the first share is taken to have always held, so a
    deployment reads as if it had been at its starting split forever.
    """

    def __init__(self, start: float, share: float) -> None:
        self._points: list[tuple[float, float]] = [(start, share)]

    @property
    def current(self) -> float:
        return self._points[-1][1]

    def set(self, at: float, share: float) -> None:
        if at < self._points[-1][0]:
            at = self._points[-1][0]  # a clock going back must not reorder the steps
        self._points.append((at, share))

    def average(self, now: float, window: float) -> float:
        """Mean share over ``[now - window, now]``; the current share when ``window`` <= 0."""
        if window <= 0.0:
            return self.current
        start = now - window
        self._forget_before(start)
        total = 0.0
        for i, (at, share) in enumerate(self._points):
            end = self._points[i + 1][0] if i + 1 < len(self._points) else now
            begin = max(at, start) if i > 0 else start
            if end > begin:
                total += share * (min(end, now) - begin)
        return total / window

    def _forget_before(self, start: float) -> None:
        """Drop steps that ended before ``start``; the one in force at ``start`` stays."""
        while len(self._points) > 1 and self._points[1][0] <= start:
            self._points.pop(0)

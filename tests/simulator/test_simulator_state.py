"""The pure model, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from simulator_testkit import FakeClock

from simulator.state import NotFound, Simulator
from simulator.window import ShareHistory


def test_share_history_window_average() -> None:
    history = ShareHistory(start=0.0, share=0.5)
    assert history.average(now=0.0, window=2.0) == 0.5  # the start extends backwards
    history.set(10.0, 0.0)
    assert history.average(now=10.0, window=2.0) == 0.5
    assert history.average(now=11.0, window=2.0) == pytest.approx(0.25)
    history.set(11.0, 1.0)
    assert history.average(now=11.5, window=2.0) == pytest.approx((0.5 * 0.5 + 1.0 * 0.5) / 2)
    assert history.average(now=13.0, window=2.0) == 1.0
    assert history.average(now=13.0, window=0.0) == 1.0


def test_counters_accumulate_exactly_between_changes() -> None:
    clock = FakeClock(0.0)
    sim = Simulator({"a": 25}, clock=clock)
    deployment = sim.get("a")
    clock.advance(4)
    deployment.set_split(50, 50)
    clock.advance(2)
    counters = deployment.metrics().counters
    assert counters["treatment"].requests == pytest.approx(250 * 4 + 500 * 2)
    assert counters["control"].requests == pytest.approx(750 * 4 + 500 * 2)
    assert counters["treatment"].buckets[-1] == counters["treatment"].requests


def test_model_errors() -> None:
    sim = Simulator({"a": 25}, wall_clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(NotFound, match="unknown deployment 'b'"):
        sim.get("b")
    with pytest.raises(ValueError, match="must be 100"):
        sim.get("a").set_split(30, 30)
    with pytest.raises(ValueError, match="invalid deployment name"):
        Simulator({"has space": 1})
    with pytest.raises(ValueError, match="0 to 100"):
        Simulator({"a": 101})
    assert sim.get("a").logs()[0].at == datetime(2030, 1, 1, tzinfo=UTC)

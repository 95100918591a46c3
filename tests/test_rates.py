"""The one rule for a counter's rate (engine/rates.py): evictions per minute, as the server, the panel and the
command line show it. Times are given, so each case says exactly what was read when."""

from __future__ import annotations

import pytest

from engine.rates import MIN_SPAN_S, RATE_WINDOW_S, CounterRate


def test_one_reading_tells_no_rate() -> None:
    rate = CounterRate()
    assert rate.per_minute() is None
    rate.observe(10, at=100.0)
    assert rate.per_minute() is None


def test_readings_too_close_together_tell_no_rate() -> None:
    rate = CounterRate()
    rate.observe(10, at=100.0)
    rate.observe(12, at=100.0 + MIN_SPAN_S / 2)
    assert rate.per_minute() is None


def test_growth_per_minute_between_readings() -> None:
    rate = CounterRate()
    rate.observe(10, at=100.0)
    rate.observe(10, at=110.0)
    assert rate.per_minute() == 0.0
    rate.observe(15, at=130.0)
    assert rate.per_minute() == pytest.approx(5 * 60 / 30)


def test_the_rate_covers_about_the_last_window() -> None:
    rate = CounterRate()
    rate.observe(0, at=0.0)
    rate.observe(1000, at=10.0)  # a burst long ago
    for second in range(20, 200, 10):
        rate.observe(1000 + second, at=float(second))
    # Only the last window (and the one reading before it) counts: one per second, 60 per minute.
    assert rate.per_minute() == pytest.approx(60.0)
    assert RATE_WINDOW_S == 60.0


def test_an_overtaken_read_is_left_out_and_a_restarted_counter_starts_again() -> None:
    rate = CounterRate()
    rate.observe(100, at=0.0)
    rate.observe(130, at=30.0)
    rate.observe(120, at=30.5)  # read before the 130 but answered after it
    assert rate.per_minute() == pytest.approx(60.0)
    rate.observe(2, at=40.0)  # below every reading kept: the index was made anew
    assert rate.per_minute() is None
    rate.observe(8, at=43.0)
    assert rate.per_minute() == pytest.approx(120.0)

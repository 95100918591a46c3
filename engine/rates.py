"""Rates derived from counters that only grow (evictions per minute), the one rule for every reader.

A process that reads a counter now and then (the cache answering ``/cache/index`` or ``/metrics``, the
panel's poll) feeds each reading to a ``CounterRate``; the rate is the counter's growth over about the last
``RATE_WINDOW_S`` seconds of readings, per minute. One reading alone, or readings closer together than
``MIN_SPAN_S``, tell no rate (``None``): a rate is never made up from a single number.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

#: The span of readings a rate is taken over, in seconds: "per minute" over about the last minute.
RATE_WINDOW_S = 60.0
#: Readings closer together than this tell no rate (two reads of one poll land a few ms apart).
MIN_SPAN_S = 1.0
#: At most this many readings are kept, however often the counter is read.
MAX_READINGS = 1024


class CounterRate:
    """The growth of one counter per minute, from timed readings of it."""

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._readings: deque[tuple[float, int]] = deque(maxlen=MAX_READINGS)

    def observe(self, value: int, at: float | None = None) -> None:
        """Record that the counter read ``value`` at ``at`` (the clock's now by default).

        A value below the last one is a read that was overtaken by a later one (two requests reading at
        once) and is left out, unless it is below every reading kept: then the counter started again (the
        index was dropped and made anew), and the earlier readings, which no longer compare, are forgotten."""
        when = self.clock() if at is None else at
        readings = self._readings
        if readings and value < readings[-1][1]:
            if value >= readings[0][1]:
                return
            readings.clear()
        if readings and when < readings[-1][0]:
            return  # a clock that went back: nothing to compare with
        readings.append((when, value))
        # Keep one reading at or before the window's start, so the span reaches the whole window.
        while len(readings) > 2 and readings[1][0] <= when - self.window_s:
            readings.popleft()

    def per_minute(self) -> float | None:
        """The counter's growth per minute over the readings kept; ``None`` until they span ``MIN_SPAN_S``."""
        if len(self._readings) < 2:
            return None
        (first_at, first), (last_at, last) = self._readings[0], self._readings[-1]
        span = last_at - first_at
        if span < MIN_SPAN_S:
            return None
        return (last - first) * 60.0 / span

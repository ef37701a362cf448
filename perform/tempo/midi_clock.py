"""Following a MIDI clock: 24 ticks a beat in, a smooth beat position and tempo out.

MIDI clock ticks arrive with the jitter of USB, the OS and the sender (a millisecond or
more; a whole audio period, 5 to 20 ms, through JACK, which delivers a period's events
together), so reading the tempo from the last interval would make visuals stutter. The
follower fits a straight line through the last four beats of ticks (tick number against
arrival time, least squares): its slope is the tempo and its value at the newest tick is
that tick's true time. Jitter averages out over 96 ticks, a missing tick leaves no hole,
and a new tempo is followed within the window. Between ticks the beat is extrapolated, but
never past the next expected tick, so a stalled clock holds instead of running away.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from perform.tempo import TempoReading

TICKS_PER_BEAT = 24
TICKS_PER_SIXTEENTH = 6  # song position pointer counts sixteenth notes
MIN_BPM, MAX_BPM = 20.0, 400.0
WINDOW = 4 * TICKS_PER_BEAT  # ticks in the fit
MIN_FIT = 6  # ticks before the fit is trusted over the tempo it had
GAP_SIGMAS = 4.0  # a gap this many jitters beyond one period means ticks were lost


class ClockFollower:
    """Turns clock messages (with their arrival times, in seconds) into beat and tempo.

    A `Tempo` source: give it times on the show's clock. Thread-safe: messages come from
    the MIDI thread, `reading` from the render thread.
    """

    def __init__(self, bpm: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._period = 60.0 / (bpm * TICKS_PER_BEAT)  # seconds per tick
        self._ticks = 0  # the position of the last tick, in ticks
        self._tick_time: float | None = None  # fitted arrival time of the last tick
        self._window: deque[tuple[int, float]] = deque(maxlen=WINDOW)  # (tick, arrival)
        self._jitter = 0.0  # standard deviation of arrivals around the fit, in seconds
        self._lands = True  # the next tick lands on _ticks itself (after start or a jump)
        self._running = False

    def tick(self, now: float) -> None:
        with self._lock:
            if not self._running:
                return
            if self._tick_time is None:  # the first tick after start or continue
                self._ticks += 0 if self._lands else 1
                self._lands = False
            else:
                self._ticks += self._steps(now)
            self._window.append((self._ticks, now))
            self._tick_time = now
            if len(self._window) >= MIN_FIT:
                self._period, self._tick_time, self._jitter = _fit(self._window)

    def _steps(self, now: float) -> int:
        """Ticks since the last one: 1, or more when some were lost on the way.

        A gap counts as lost ticks only when it is longer than the jitter could make it:
        with a steady USB clock one lost tick shows, with JACK's bunched ticks only two do.
        """
        if len(self._window) < MIN_FIT or self._tick_time is None:
            return 1
        gap = (now - self._tick_time) / self._period
        if gap - 1.0 > 0.5 + GAP_SIGMAS * self._jitter / self._period:
            return round(gap)
        return 1

    def start(self, now: float) -> None:
        """0xFA: play from the top; the next tick is beat 0."""
        with self._lock:
            self._ticks, self._lands, self._running, self._tick_time = 0, True, True, None
            self._window.clear()

    def resume(self, now: float) -> None:
        """0xFB: play on from where it stopped, or from the song position sent meanwhile."""
        with self._lock:
            self._running, self._tick_time = True, None
            self._window.clear()

    def stop(self, now: float) -> None:
        """0xFC: hold the position where the last tick left it."""
        with self._lock:
            self._running = False

    def song_position(self, sixteenths: int) -> None:
        """0xF2: jump to a position, counted in sixteenth notes (sent while stopped)."""
        with self._lock:
            self._ticks, self._lands, self._tick_time = sixteenths * TICKS_PER_SIXTEENTH, True, None

    def reading(self, now: float) -> TempoReading:
        with self._lock:
            bpm = 60.0 / (self._period * TICKS_PER_BEAT)
            ticks = float(self._ticks)
            if self._running and self._tick_time is not None:
                ticks += min(max(now - self._tick_time, 0.0) / self._period, 1.0)
            return TempoReading(ticks / TICKS_PER_BEAT, bpm, self._running)


def _fit(window: deque[tuple[int, float]]) -> tuple[float, float, float]:
    """Least squares through (tick, time): the period, the fitted time of the last tick and
    the standard deviation of the arrivals around the line.

    Ticks and times count from the window's first, to keep the sums small and exact.
    """
    first_tick, first_time = window[0]
    n = len(window)
    sx = sy = sxx = sxy = syy = 0.0
    for tick, time in window:
        x, y = tick - first_tick, time - first_time
        sx, sy, sxx, sxy, syy = sx + x, sy + y, sxx + x * x, sxy + x * y, syy + y * y
    cxx, cxy, cyy = sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n
    slope = cxy / cxx
    jitter = math.sqrt(max(cyy - slope * cxy, 0.0) / (n - 2))
    last = window[-1][0] - first_tick
    return _clamp_period(slope), first_time + (sy - slope * sx) / n + slope * last, jitter


def _clamp_period(period: float) -> float:
    shortest = 60.0 / (MAX_BPM * TICKS_PER_BEAT)
    longest = 60.0 / (MIN_BPM * TICKS_PER_BEAT)
    return min(max(period, shortest), longest)

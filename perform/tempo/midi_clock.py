"""Following a MIDI clock: 24 ticks a beat in, a smooth beat position and tempo out.

MIDI clock ticks arrive with the jitter of USB, the OS and the sender (a millisecond or
more), so reading the tempo from the last interval would make visuals stutter. The follower
is an alpha-beta filter, a simple phase-locked loop: each tick corrects the predicted tick
time by a fraction `alpha` of the error and the tick period by a fraction `beta`. Between
ticks the beat is extrapolated, but never past the next expected tick, so a stalled clock
holds its position instead of running away.
"""

from __future__ import annotations

import threading

from perform.tempo import TempoReading

TICKS_PER_BEAT = 24
TICKS_PER_SIXTEENTH = 6  # song position pointer counts sixteenth notes
MIN_BPM, MAX_BPM = 20.0, 400.0


class ClockFollower:
    """Turns clock messages (with their arrival times, in seconds) into beat and tempo.

    A `Tempo` source: give it times on the show's clock. Thread-safe: messages come from
    the MIDI thread, `reading` from the render thread.
    """

    def __init__(self, bpm: float = 120.0, alpha: float = 0.15, beta: float = 0.01) -> None:
        self._lock = threading.Lock()
        self.alpha, self.beta = alpha, beta
        self._period = 60.0 / (bpm * TICKS_PER_BEAT)  # seconds per tick
        self._ticks = 0  # the position of the last tick, in ticks
        self._tick_time: float | None = None  # filtered arrival time of the last tick
        self._lands = True  # the next tick lands on _ticks itself (after start or a jump)
        self._running = False
        self._measured = False  # whether the period was measured since the clock (re)started

    def tick(self, now: float) -> None:
        with self._lock:
            if not self._running:
                return
            if self._tick_time is None:  # the first tick after start or continue
                self._ticks += 0 if self._lands else 1
                self._tick_time, self._lands = now, False
                return
            predicted = self._tick_time + self._period
            error = now - predicted
            if not self._measured or abs(error) > 4 * self._period:
                # the first interval, or a gap (dropped ticks, a new tempo): measure afresh
                steps = max(round((now - self._tick_time) / self._period), 1)
                if not self._measured:
                    self._period = _clamp_period(now - self._tick_time)
                    steps = 1
                self._tick_time, self._ticks, self._measured = now, self._ticks + steps, True
                return
            self._tick_time = predicted + self.alpha * error
            self._period = _clamp_period(self._period + self.beta * error)
            self._ticks += 1

    def start(self, now: float) -> None:
        """0xFA: play from the top; the next tick is beat 0."""
        with self._lock:
            self._ticks, self._lands, self._running, self._tick_time = 0, True, True, None

    def resume(self, now: float) -> None:
        """0xFB: play on from where it stopped, or from the song position sent meanwhile."""
        with self._lock:
            self._running, self._tick_time = True, None

    def stop(self, now: float) -> None:
        """0xFC: hold the position where the last tick left it."""
        with self._lock:
            self._running, self._measured = False, False

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


def _clamp_period(period: float) -> float:
    shortest = 60.0 / (MAX_BPM * TICKS_PER_BEAT)
    longest = 60.0 / (MIN_BPM * TICKS_PER_BEAT)
    return min(max(period, shortest), longest)

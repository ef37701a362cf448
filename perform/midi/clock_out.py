"""MIDI clock out: when perform keeps the time, 24 ticks a beat tell drum machines and DAWs.

A thread of its own sends each tick at its moment on the tempo source (`--bpm` or Ableton
Link), read afresh before every tick, so tempo changes and Link's phase carry over and
nothing drifts. Start is sent on the next bar line, so the receiver's bars are ours; a late
wake-up sends the missed ticks at once rather than losing count, and a jump of the beat (a
Link peer restarting) resynchronises instead of bursting.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import mido

from perform.tempo import TempoReading
from perform.tempo.midi_clock import TICKS_PER_BEAT

CLOCK, START, STOP = (mido.Message(kind) for kind in ("clock", "start", "stop"))
LONGEST_SLEEP = 0.02  # seconds: re-read the tempo at least this often
RESYNC = TICKS_PER_BEAT  # a beat position this many ticks off the schedule is a jump


class ClockSender:
    """Sends MIDI clock to `send` from `reading()` (the tempo source, read now)."""

    def __init__(self, reading: Callable[[], TempoReading], send: Callable[[mido.Message], None],
                 beats_per_bar: int = 4) -> None:
        self._reading, self._send, self._bar = reading, send, beats_per_bar
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perform-midi-clock", daemon=True)
        self.ticks = 0  # sent since start

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop sending; the receivers get Stop if Start was sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        reading = self._reading()
        bar_ticks = self._bar * TICKS_PER_BEAT
        due = (math.floor(reading.beat * TICKS_PER_BEAT / bar_ticks) + 1) * bar_ticks
        started = False
        try:
            while not self._stop.is_set():
                reading = self._reading()
                now = reading.beat * TICKS_PER_BEAT
                if abs(now - due) > RESYNC and started:
                    due = math.floor(now) + 1  # the beat jumped: pick up from here
                if now < due:
                    wait = (due - now) / TICKS_PER_BEAT * 60.0 / reading.bpm
                    self._stop.wait(min(wait, LONGEST_SLEEP))
                    continue
                if not started:
                    self._send(START)
                    started = True
                self._send(CLOCK)
                self.ticks += 1
                due += 1
        finally:
            if started:
                self._send(STOP)

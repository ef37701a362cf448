"""Where the music is: a tempo source gives the beat at each moment of the show's clock.

The render thread asks once per frame (`reading(t)`, t in seconds since the show started).
A fixed tempo is arithmetic; a followed MIDI clock (`midi_clock`) is a filter fed by the
MIDI thread; Ableton Link (`link`) is the session shared with other apps on the network.
Patches see the result as `ctx.beat` and `ctx.bpm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TempoReading:
    beat: float  # beats since the start (or the song position)
    bpm: float
    running: bool = True  # False while a followed clock is stopped: the beat holds


class Tempo(Protocol):
    def reading(self, t: float) -> TempoReading: ...


@dataclass
class FixedTempo:
    """`--bpm`: the beat counts from the show's start; offline renders get the same beats."""

    bpm: float = 120.0

    def reading(self, t: float) -> TempoReading:
        return TempoReading(t * self.bpm / 60.0, self.bpm)

"""The show's ears: one source (a live input or a file) feeding one analyser, read by the
render thread once per frame as `ctx.audio`.

A live input feeds the analyser from its own reader thread, and a frame reads the newest
features. A file is advanced by the frame itself to the frame's time, so rehearsing with a
file, and rendering a music video offline, hear exactly the audio up to each frame. When
the input fails, or the file's clock jumps, the analyser starts afresh: patches see the
music at rest, never stale values. With `--audio-tempo` the beat tracker is the show's
tempo (`AudioTempo`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perform.audio.features import DEFAULT_BANDS, Analyzer, AudioFeatures
from perform.audio.sources import FileInput, LiveInput
from perform.tempo import FixedTempo, TempoReading


@dataclass(frozen=True)
class AudioConfig:
    """What `perform run` listens to: a live input (`device`, None for the default one) or
    a `file` (played by the show's clock, looping: rehearsal)."""

    device: str | None = None
    file: Path | None = None
    channels: tuple[int, ...] | None = None  # 1-based inputs, averaged to mono
    bands: Mapping[str, tuple[float, float]] = field(default_factory=lambda: DEFAULT_BANDS)
    tempo: bool = False  # the beat tracker drives ctx.beat

    def open(self) -> Listening:
        if self.file is not None:
            return Listening.file(self.file, loop=True, bands=self.bands)
        device = int(self.device) if self.device and self.device.isdigit() else self.device
        return Listening.live(device, self.channels, self.bands)


class Listening:
    """A started source and its analyser; `at(t)` is the music at show time t."""

    def __init__(self, source: LiveInput | FileInput, sample_rate: int,
                 bands: Mapping[str, tuple[float, float]]) -> None:
        self.source = source
        self.analyzer = Analyzer(sample_rate, bands)
        self._lock = threading.Lock()  # a live input feeds while a frame may reset
        self._state = "running"
        source.sink = self._feed

    @classmethod
    def live(cls, device: str | int | None = None, channels: Sequence[int] | None = None,
             bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS) -> Listening:
        """Listen to a sound card input (AudioError if it cannot be opened)."""
        source = LiveInput(lambda block: None, device, channels)
        source.start()
        assert source.sample_rate is not None
        return cls(source, source.sample_rate, bands)

    @classmethod
    def file(cls, path: Path, loop: bool = False,
             bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS) -> Listening:
        """Listen to a decoded file, played by the show's clock (AudioError if unreadable)."""
        source = FileInput(path, lambda block: None, loop)
        return cls(source, source.sample_rate, bands)

    def at(self, t: float) -> AudioFeatures:
        if isinstance(self.source, FileInput):
            if self.source.advance_to(t):
                self._reset()  # a seek: what came before is another moment of the music
        else:
            state = self.source.state
            if state != self._state:
                self._state = state
                self._reset()  # lost (or back): rest until the music arrives again
        return self.analyzer.features

    def close(self) -> None:
        if isinstance(self.source, LiveInput):
            self.source.close()

    def status(self) -> dict[str, Any]:
        return {**self.source.status(), "bands": list(self.analyzer.features.bands),
                "bad_samples": self.analyzer.nonfinite_samples}

    def _feed(self, block: np.ndarray) -> None:
        with self._lock:
            self.analyzer.feed(block)

    def _reset(self) -> None:
        with self._lock:
            self.analyzer.reset()


class AudioTempo:
    """The beat tracker as the show's tempo (`--audio-tempo`): `ctx.beat` and `ctx.on()`
    follow the music once it has locked, and a fixed tempo counts until then."""

    def __init__(self, listening: Listening, fallback_bpm: float) -> None:
        self.listening, self.fallback = listening, FixedTempo(fallback_bpm)

    def reading(self, t: float) -> TempoReading:
        heard = self.listening.analyzer.features
        if heard.bpm <= 0.0:
            return self.fallback.reading(t)
        return TempoReading(heard.beats + heard.phase, heard.bpm)

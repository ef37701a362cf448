"""Musical features from audio, computed causally: samples in, one snapshot per hop out.

Every `hop` samples the analyser takes the last `window` samples (a frame), Hann-windows it
and reads from it and its FFT:

- level: the RMS of the frame;
- bands: the RMS of each band's part of the spectrum (its bins' power, by Parseval);
- onset: spectral flux, the mean rise of the log-compressed magnitude since the frame
  FLUX_LAG seconds back (falls are ignored), over the whole spectrum and per band;
- onsets: counted where the flux rises through an adaptive threshold (`_OnsetPicker`);
- chroma: the power of the bins from 55 Hz to 5 kHz, each added to its nearest pitch class;
- percussive / harmonic: the level, split by how much of the frame's power is broadband
  hits rather than steady tones (`_HarmonicPercussive`);
- bpm, phase, beats: the beat tracker (`perform.audio.beat`) fed with the onset strength.

Nothing looks ahead: a snapshot at time T is made from samples before T only. A frame is
made when a whole hop has arrived, so features lag the audio by up to one hop. An onset is
counted in the first frame it enters: 0 to 1 hop after it sounds, half a hop on average
(a click, at 48 kHz with hop 512: 1 to 12 ms, median 6). Level and band energies, averaged
over the window, reach their full value once the sound fills it.

Each value is then divided by its own slowly decaying peak (`_Normaliser`), so quiet and
loud input both land in 0..1, and smoothed (`_Envelope`: fast rise, slow fall, so a flash
lasts long enough to see). Frames quieter than LEVEL_FLOOR are silence: level, bands and
flux read 0 there, so hiss and dither are not amplified into signal. The bands' floor and
the knee of the flux's log compression follow the loudest recent level, so the same music
30 dB quieter gives the same features. Chroma is smoothed the same way and divided by its
largest class, or by the power of a tone 20 dB under the loudest level where that is more:
its largest class reads 1, fading to 0 as the music fades out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from perform.audio.beat import BeatTracker

__all__ = ["DEFAULT_BANDS", "REST", "Analyzer", "AudioFeatures"]

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "low": (20, 250), "mid": (250, 4000), "high": (4000, 16000)}

LEVEL_FLOOR = 1e-3  # a frame under -60 dBFS RMS is silence: no level, bands or flux
PEAK_HALF_LIFE = 10.0  # seconds for a normaliser's peak to halve once the music gets quieter
BAND_RANGE = 0.1  # a band reaches 1 only within 20 dB of the loudest level (its peak)
BAND_FLUX_RANGE = 0.5  # a band's flux reaches 1 only within half the busiest band's peak
KNEE = 1e-4  # flux compares log(1 + |X| / knee), the knee 80 dB below the loudest level
FLUX_LAG = 0.02  # seconds back to the frame that flux compares with (2 hops of 512 at 48 kHz)
FLUX_FLOOR = 0.05  # mean rise of log magnitude (nats) below which flux counts as nothing
ONSET_MEMORY = 0.25  # seconds of flux whose median the onset threshold rises from
ONSET_DELTA = 0.15  # how far above that median (in normalised flux) an onset must reach
ONSET_GAP = 0.05  # seconds: the shortest time between two onsets
ONSET_LATENCY_HOPS = 0.5  # an onset is detected on average this many hops after it sounds
CHROMA_RANGE = (55.0, 5000.0)  # Hz: the bins that vote for pitch classes
HARMONIC_MEMORY = 0.1  # seconds a tone must hold still to count as harmonic
PERCUSSIVE_SPREAD = 500.0  # Hz of neighbouring bins a hit must fill to count as percussive


class _ByBand(Mapping[str, float]):
    """A read-only dict of values by band name (unlike a MappingProxyType, it copies and
    pickles, so a snapshot can too)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, float]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(self._values)


def _zeros(names: tuple[str, ...], zero: float = 0.0) -> Mapping[str, float]:
    return _ByBand(dict.fromkeys(names, zero))


@dataclass(frozen=True)
class AudioFeatures:
    """One moment of the music, every value a patch reads in 0..1 unless said otherwise.

    A band is also an attribute: `ctx.audio.low` is `ctx.audio.bands["low"]`.
    """

    time: float = 0.0  # seconds of audio analysed so far
    level: float = 0.0  # loudness (RMS), enveloped and normalised
    bands: Mapping[str, float] = field(default_factory=lambda: _zeros(tuple(DEFAULT_BANDS)))
    onset: float = 0.0  # onset strength (spectral flux), enveloped and normalised
    band_onsets: Mapping[str, float] = field(
        default_factory=lambda: _zeros(tuple(DEFAULT_BANDS)))
    onsets: int = 0  # onsets detected so far (a counter: a patch compares frames)
    band_onset_counts: Mapping[str, int] = field(
        default_factory=lambda: _zeros(tuple(DEFAULT_BANDS), 0))
    bpm: float = 0.0  # tempo from the beat tracker (0 until it has locked)
    phase: float = 0.0  # where in the beat we are, 0..1 (0 on the beat)
    beats: int = 0  # beats so far (counter)
    chroma: tuple[float, ...] = (0.0,) * 12  # pitch classes C, C#, ... B, the largest 1
    percussive: float = 0.0  # the level carried by broadband hits
    harmonic: float = 0.0  # the level carried by steady tones

    def __getattr__(self, name: str) -> float:
        bands = self.__dict__.get("bands", {})
        if name in bands:
            return bands[name]
        raise AttributeError(f"no audio feature or band named {name!r}")


REST = AudioFeatures()  # what patches see with no audio, or when it stops: values at rest


class Analyzer:
    """Feeds on mono float32 blocks of any length; `features` is the latest snapshot (safe to
    read from any thread: one immutable object swapped in).

    A frame of `window` samples is analysed every `hop` samples; `attack` and `release`
    (seconds) set how fast the enveloped values rise and fall.
    """

    def __init__(self, sample_rate: int, bands: Mapping[str, tuple[float, float]] = DEFAULT_BANDS,
                 *, hop: int = 512, window: int = 2048, attack: float = 0.01,
                 release: float = 0.25) -> None:
        if sample_rate <= 0 or not 0 < hop <= window:
            raise ValueError(f"need sample_rate > 0 and 0 < hop <= window, not "
                             f"{sample_rate}, {hop}, {window}")
        self._names = tuple(bands)
        taken = {f.name for f in fields(AudioFeatures)}
        for name in self._names:
            if name in taken or name.startswith("_"):
                raise ValueError(f"band name {name!r} would hide an audio feature")
        self._hop, self._window = hop, window
        self._frame_seconds = hop / sample_rate
        frequencies = np.fft.rfftfreq(window, 1.0 / sample_rate)
        self._hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
        # scales |FFT|² to each bin's share of the frame's mean square (Parseval), so that a
        # band's power sums to the mean square of that band's part of the signal
        self._power_scale = 2.0 / (window * np.sum(self._hann ** 2))
        self._band_masks = _band_masks(bands, frequencies)
        self._flux_weights = _flux_weights(self._band_masks, frequencies)
        self._chroma_map = _chroma_map(frequencies)
        self._flux_lag = max(1, round(FLUX_LAG / self._frame_seconds))
        self._split = _HarmonicPercussive(
            len(frequencies), frames=_odd(HARMONIC_MEMORY / self._frame_seconds),
            bins=_odd(PERCUSSIVE_SPREAD / frequencies[1]))
        self._beat = BeatTracker(sample_rate / hop,
                                 latency=ONSET_LATENCY_HOPS * self._frame_seconds)
        n = len(self._names)
        self._normalise_level = _Normaliser(1, self._frame_seconds)
        self._normalise_bands = _Normaliser(n, self._frame_seconds)
        self._normalise_onset = _Normaliser(1, self._frame_seconds)
        self._normalise_band_onsets = _Normaliser(n, self._frame_seconds, BAND_FLUX_RANGE)
        # one envelope for level, bands, onset, band onsets, percussive, harmonic
        self._envelope = _Envelope(2 * n + 4, self._frame_seconds, attack, release)
        self._chroma_envelope = _Envelope(12, self._frame_seconds, attack, release)
        self._onset_picker = _OnsetPicker(1 + n, self._frame_seconds)
        self.reset()

    @property
    def features(self) -> AudioFeatures:
        return self._features

    @property
    def nonfinite_samples(self) -> int:
        """How many NaN or infinite samples came in (each was analysed as 0)."""
        return self._nonfinite

    def reset(self) -> None:
        """Back to rest, forgetting all the music so far (a source stopped)."""
        self._frame = np.zeros(self._window)
        self._pending = np.zeros(self._hop)
        self._pending_count = 0
        self._past_log_magnitudes = np.zeros((self._flux_lag, self._flux_weights.shape[1]))
        self._onset_counts = np.zeros(1 + len(self._names), dtype=int)
        self._frames = 0
        self._nonfinite = 0
        for part in (self._normalise_level, self._normalise_bands, self._normalise_onset,
                     self._normalise_band_onsets, self._envelope, self._chroma_envelope,
                     self._onset_picker, self._split, self._beat):
            part.reset()
        names = self._names
        self._features = AudioFeatures(bands=_zeros(names), band_onsets=_zeros(names),
                                       band_onset_counts=_zeros(names, 0))

    def feed(self, samples: np.ndarray) -> None:
        """Analyse `samples` (mono, any length) following the ones fed before."""
        block = np.asarray(samples, dtype=np.float32)  # a huge float64 becomes inf, then 0
        if block.ndim != 1:
            raise ValueError(f"mono samples come as a 1-D array, not shape {block.shape}")
        bad = ~np.isfinite(block)
        if bad.any():
            self._nonfinite += int(bad.sum())
            block = np.where(bad, np.float32(0.0), block)
        analysed = False
        start = 0
        while start < len(block):
            take = min(self._hop - self._pending_count, len(block) - start)
            self._pending[self._pending_count:self._pending_count + take] = \
                block[start:start + take]
            self._pending_count += take
            start += take
            if self._pending_count == self._hop:
                self._frame[:-self._hop] = self._frame[self._hop:]
                self._frame[-self._hop:] = self._pending
                self._pending_count = 0
                self._analyse_frame()
                analysed = True
        if analysed:
            self._features = self._snapshot()

    def _analyse_frame(self) -> None:
        self._frames += 1
        spectrum = np.fft.rfft(self._frame * self._hann)
        power = (spectrum.real ** 2 + spectrum.imag ** 2) * self._power_scale
        magnitude = np.sqrt(power)

        loudness = math.sqrt(float(np.mean(self._frame ** 2)))
        heard = float(loudness >= LEVEL_FLOOR)  # below it, all there is to read is noise
        level = heard * self._normalise_level(np.array([loudness]), LEVEL_FLOOR)
        loudest = float(self._normalise_level.scale[0])  # sets the scale of the spectrum too

        log_magnitude = np.log1p(magnitude / (KNEE * loudest))
        rise = np.maximum(log_magnitude - self._past_log_magnitudes[0], 0.0)
        self._past_log_magnitudes[:-1] = self._past_log_magnitudes[1:]
        self._past_log_magnitudes[-1] = log_magnitude
        flux = heard * (self._flux_weights @ rise)  # the whole spectrum's, then each band's
        strength = np.concatenate((self._normalise_onset(flux[:1], FLUX_FLOOR),
                                   self._normalise_band_onsets(flux[1:], FLUX_FLOOR)))

        bands = self._normalise_bands(heard * np.sqrt(self._band_masks @ power),
                                      BAND_RANGE * loudest)
        percussive_share = self._split(magnitude, power)
        self._values = self._envelope(np.concatenate((
            level, bands, strength, level * percussive_share, level * (1 - percussive_share))))

        fired = self._onset_picker(strength)
        self._onset_counts += fired
        self._beat.update(float(strength[0]), bool(fired[0]))

        self._chroma_energy = self._chroma_envelope(heard * (self._chroma_map @ power))
        self._chroma_floor = (BAND_RANGE * loudest) ** 2  # fainter, it fades instead of peaking

    def _snapshot(self) -> AudioFeatures:
        n = len(self._names)
        values = np.clip(self._values, 0.0, 1.0).tolist()
        chroma = self._chroma_energy / max(float(self._chroma_energy.max()), self._chroma_floor)
        counts = self._onset_counts.tolist()
        return AudioFeatures(
            time=self._frames * self._frame_seconds,
            level=values[0],
            bands=self._by_band(values[1:1 + n]),
            onset=values[1 + n],
            band_onsets=self._by_band(values[2 + n:2 + 2 * n]),
            onsets=counts[0],
            band_onset_counts=self._by_band(counts[1:]),
            bpm=self._beat.bpm,
            phase=self._beat.phase,
            beats=self._beat.beats,
            chroma=tuple(chroma.tolist()),
            percussive=values[-2],
            harmonic=values[-1],
        )

    def _by_band(self, values: list[float]) -> Mapping[str, float]:
        return _ByBand(dict(zip(self._names, values, strict=True)))


class _Normaliser:
    """Divides each of a group of values (the bands, say) by its own slowly decaying peak, so
    quiet and loud input both land in 0..1.

    A peak jumps to any higher value and halves every PEAK_HALF_LIFE seconds otherwise, so
    after a loud passage the scale comes back down within half a minute. No value is divided
    by less than the `floor` given with it (below that is silence, or too little to matter:
    kept near 0, not amplified into noise) nor by less than `dynamic_range` times the group's
    highest peak (a band that only catches its neighbour's leakage stays low).
    """

    def __init__(self, size: int, frame_seconds: float, dynamic_range: float = 0.0) -> None:
        self._size, self._range = size, dynamic_range
        self._decay = 0.5 ** (frame_seconds / PEAK_HALF_LIFE)
        self.reset()

    def reset(self) -> None:
        self._peaks = np.zeros(self._size)
        self.scale = np.zeros(self._size)  # what each value was last divided by

    def __call__(self, values: np.ndarray, floor: float) -> np.ndarray:
        self._peaks = np.maximum(values, self._peaks * self._decay)
        self.scale = np.maximum(self._peaks, max(floor, self._range * float(self._peaks.max())))
        return values / self.scale


class _Envelope:
    """Attack/release smoothing: a rise is followed within `attack` seconds, a fall over
    `release` (the time constants of one-pole filters, one per direction)."""

    def __init__(self, size: int, frame_seconds: float, attack: float, release: float) -> None:
        self._size = size
        self._rise = 1.0 - math.exp(-frame_seconds / attack) if attack > 0 else 1.0
        self._fall = 1.0 - math.exp(-frame_seconds / release) if release > 0 else 1.0
        self.reset()

    def reset(self) -> None:
        self._value = np.zeros(self._size)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        rate = np.where(values > self._value, self._rise, self._fall)
        self._value = self._value + rate * (values - self._value)
        return self._value


class _OnsetPicker:
    """Adaptive threshold: an onset where the normalised flux rises through its median over the
    last ONSET_MEMORY seconds plus ONSET_DELTA, at least ONSET_GAP seconds after the previous
    onset.

    The median follows a steady texture (noise, a held chord) without letting the peaks
    themselves raise the bar. The first frame above it counts, so detection waits for no peak
    to pass; the flux must fall back below it before the next onset, so a slow attack that
    stays above the threshold for longer than the gap counts once.
    """

    def __init__(self, size: int, frame_seconds: float) -> None:
        self._history = np.zeros((size, max(1, round(ONSET_MEMORY / frame_seconds))))
        self._gap_frames = ONSET_GAP / frame_seconds
        self.reset()

    def reset(self) -> None:
        self._history[:] = 0.0
        self._above = np.zeros(len(self._history), dtype=bool)
        self._since = np.full(len(self._history), np.inf)  # frames since each last onset

    def __call__(self, flux: np.ndarray) -> np.ndarray:
        above = flux > np.median(self._history, axis=1) + ONSET_DELTA
        fired = above & ~self._above & (self._since >= self._gap_frames)
        self._above = above
        self._since = np.where(fired, 1.0, self._since + 1.0)
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = flux
        return fired


class _HarmonicPercussive:
    """How much of a frame's power is percussive (0..1); the rest is harmonic.

    A causal take on median-filtering separation: a bin's harmonic strength is its median over
    the last HARMONIC_MEMORY seconds (a tone holds still in time), its percussive strength the
    median of this frame over PERCUSSIVE_SPREAD Hz of neighbouring bins (a hit fills all
    frequencies). Soft masks P²/(H²+P²) share each bin's power. Only the past is there to
    compare with, so the first ~50 ms of a new note count as percussive: its attack.
    """

    def __init__(self, n_bins: int, *, frames: int, bins: int) -> None:
        self._past = np.zeros((frames, n_bins))
        self._spread = bins
        self.reset()

    def reset(self) -> None:
        self._past[:] = 0.0

    def __call__(self, magnitude: np.ndarray, power: np.ndarray) -> float:
        self._past[:-1] = self._past[1:]
        self._past[-1] = magnitude
        middle = len(self._past) // 2
        harmonic = np.partition(self._past, middle, axis=0)[middle]
        half = self._spread // 2
        neighbours = np.lib.stride_tricks.sliding_window_view(
            np.pad(magnitude, half, mode="edge"), self._spread)
        percussive = np.partition(neighbours, half, axis=1)[:, half]
        total = float(power.sum())
        if total <= 0.0:
            return 0.0
        mask = percussive ** 2 / np.maximum(harmonic ** 2 + percussive ** 2, 1e-30)
        return float(mask @ power) / total


def _band_masks(bands: Mapping[str, tuple[float, float]], frequencies: np.ndarray) -> np.ndarray:
    """One row per band: 1 for the FFT bins whose frequency lies in [low, high)."""
    if not bands:
        raise ValueError("no bands")
    masks = np.zeros((len(bands), len(frequencies)))
    for row, (name, (low, high)) in enumerate(bands.items()):
        inside = (frequencies >= low) & (frequencies < high)
        if not inside.any():
            raise ValueError(f"band {name!r} ({low}..{high} Hz) holds no FFT bin at this "
                             "sample rate and window")
        masks[row, inside] = 1.0
    return masks


def _flux_weights(band_masks: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Rows that average the rise over bins: first the whole spectrum, then each band.

    The whole spectrum's average weighs each bin by 1/frequency, so that every octave counts
    the same: a bass note moves it as much as a hi-hat, though it spans a few bins, not
    hundreds. Inside a band, every bin counts the same.
    """
    octaves = np.zeros(len(frequencies))
    audible = frequencies >= 20.0
    octaves[audible] = 1.0 / frequencies[audible]
    rows = np.vstack((octaves, band_masks))
    return rows / rows.sum(axis=1, keepdims=True)


def _chroma_map(frequencies: np.ndarray) -> np.ndarray:
    """12 rows (C, C#, ... B): 1 for the bins in CHROMA_RANGE nearest that pitch class."""
    low, high = CHROMA_RANGE
    chroma = np.zeros((12, len(frequencies)))
    inside = np.flatnonzero((frequencies >= low) & (frequencies <= high))
    midi = 69 + 12 * np.log2(frequencies[inside] / 440.0)
    chroma[np.rint(midi).astype(int) % 12, inside] = 1.0
    return chroma


def _odd(count: float) -> int:
    """The nearest odd whole number of at least 1 (a median's window has a middle)."""
    return max(1, 2 * round((count - 1) / 2) + 1)

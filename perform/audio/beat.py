"""Tempo and beat phase, causally, from the onset strength: one frame at a time.

Tempo: the autocorrelation of the last `memory` seconds of onset strength is scored for each
candidate tempo (`min_bpm`..`max_bpm`, in half-BPM steps) by a comb: the correlation at one
and two beat periods, less HALFWAY times the correlation halfway between them. The halfway
term is what tells 87 from 174 BPM on a click track: counted at 87 BPM, a pulse at 174
fills the halfways. It is kept small, as off-beat hi-hats fill them too, and a drum pattern
at 90 should not read as 180. What the comb cannot settle (the hats are a pulse too) a broad
preference settles: scores are weighted by a bump one octave wide around `preferred_bpm`
(120), so of two readings an octave apart the one nearer 120 wins. The best candidate's
period is then refined from where the correlation peaks at its multiples really lie: their
centroids, fitted by a line through the origin (a click every 32.3 frames correlates at
lags 32 and 33 in proportion).

Lock: `bpm` stays 0 until the estimate has held within 2% for `settle` seconds; then it is
the median of those estimates (which averages out the frame grid). It follows a new tempo the
same way and lets go after `memory` seconds without a confident estimate.

Phase: a beat counter advances at the tempo. Each detected onset within a fifth of a beat of
the counter's nearest beat pulls the counter a third of the way to it (a phase-locked loop),
so a slightly wrong tempo is corrected every beat and off-beat onsets are ignored. On lock
and on a tempo change the phase starts from the pulse train that best fits the recent onset
strength. Onsets are detected `latency` seconds after they sound; the phase counts from when
they sounded, so 0 falls on the beat in the audio, not on its detection.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

BPM_STEP = 0.5  # candidate tempo grid (refined between steps)
HALFWAY = 0.3  # weight of the comb's halfway (off-beat) term, against 1 for the beats
PREFERENCE_OCTAVES = 1.0  # width (standard deviation, in octaves) of the preference bump
CONFIDENCE = 0.2  # comb score (normalised autocorrelation) below which no tempo is read
MIN_ONSETS = 4  # detected onsets the memory must hold before a tempo is read from it
STABLE = 0.02  # estimates within this fraction of their median count as one tempo
PULL = 1 / 3  # how far each onset pulls the phase toward itself
CAPTURE = 0.2  # onsets further than this (in beats) from the nearest beat are ignored
FIT_BEATS = 8  # beats of recent onset strength the starting phase is fitted to


class BeatTracker:
    """Reads tempo (`bpm`), `phase` (0..1, 0 on the beat) and a `beats` counter from onsets.

    Call `update` once per analysis frame (`frame_rate` a second) with the frame's onset
    strength (about 0..1) and whether an onset was detected in it.
    """

    def __init__(self, frame_rate: float, *, memory: float = 6.0, settle: float = 1.0,
                 min_bpm: float = 60.0, max_bpm: float = 200.0, preferred_bpm: float = 120.0,
                 latency: float = 0.0) -> None:
        if not 0 < min_bpm < max_bpm:
            raise ValueError(f"tempo range {min_bpm}..{max_bpm} BPM is empty")
        self._frame_rate = frame_rate
        self._latency_frames = latency * frame_rate
        self._candidates = np.arange(min_bpm, max_bpm + BPM_STEP / 2, BPM_STEP)
        periods = 60.0 * frame_rate / self._candidates  # frames a beat
        self._max_lag = math.ceil(2 * periods.max()) + 1
        self._history = np.zeros(max(round(memory * frame_rate), 2 * self._max_lag))
        self._onsets = np.zeros(len(self._history), dtype=bool)  # which frames had an onset
        self._comb = _comb(periods, self._max_lag + 1)
        self._preference = np.exp(-0.5 * (np.log2(self._candidates / preferred_bpm)
                                          / PREFERENCE_OCTAVES) ** 2)
        self._settle_frames = max(1, round(settle * frame_rate))
        self._memory_frames = len(self._history)
        self.reset()

    def reset(self) -> None:
        """Forget everything: unlocked, no history."""
        self._history[:] = 0.0
        self._onsets[:] = False
        self._filled = 0
        self._estimates: deque[float] = deque(maxlen=self._settle_frames)
        self._unsure_frames = 0
        self.bpm = 0.0
        self._position = 0.0  # beats since lock, fractional
        self.beats = 0

    @property
    def phase(self) -> float:
        """Where in the beat we are: 0 on the beat, rising to 1 just before the next."""
        return self._position % 1.0 if self.bpm else 0.0

    def update(self, strength: float, onset: bool) -> None:
        self._history[:-1] = self._history[1:]
        self._history[-1] = strength
        self._onsets[:-1] = self._onsets[1:]
        self._onsets[-1] = onset
        self._filled = min(self._filled + 1, len(self._history))
        self._follow_tempo(self._estimate())
        if not self.bpm:
            return
        self._position += self.bpm / 60.0 / self._frame_rate
        if onset:
            sounded = self._position - self._latency_frames * self.bpm / 60.0 / self._frame_rate
            error = (sounded + 0.5) % 1.0 - 0.5  # beats from the nearest beat
            if abs(error) < CAPTURE:
                self._position -= PULL * error
        self.beats = max(self.beats, math.floor(self._position))

    def _estimate(self) -> float:
        """This frame's tempo reading in BPM, or NaN when the onsets show no steady pulse."""
        if self._filled < 2 * self._max_lag:  # the longest lag needs as many products again
            return math.nan
        if np.count_nonzero(self._onsets) < MIN_ONSETS:  # a held chord's slow beating is no beat
            return math.nan
        strength = self._history[-self._filled:]
        centred = strength - strength.mean()
        size = 1 << (len(centred) + self._max_lag).bit_length()  # no wrap-around at any lag
        spectrum = np.fft.rfft(centred, size)
        lags = np.arange(self._max_lag + 1)
        correlation = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, size)[lags]
        correlation /= len(centred) - lags  # unbiased: long lags are not penalised
        if correlation[0] <= 1e-12:
            return math.nan
        comb = self._comb @ (correlation / correlation[0])
        scores = comb * self._preference
        best = int(np.argmax(scores))
        if comb[best] < CONFIDENCE:
            return math.nan
        period = _refine(correlation, 60.0 * self._frame_rate / self._candidates[best])
        return 60.0 * self._frame_rate / period

    def _follow_tempo(self, estimate: float) -> None:
        self._estimates.append(estimate)
        steady = len(self._estimates) == self._settle_frames
        if steady:
            recent = np.asarray(self._estimates)
            median = float(np.median(recent))
            steady = not math.isnan(median) and bool(
                np.all(np.abs(recent - median) <= STABLE * median))
        if steady:
            self._unsure_frames = 0
            new_tempo = abs(median - self.bpm) > STABLE * median  # or locking at all
            self.bpm = median
            if new_tempo:
                self._start_phase()
        else:
            self._unsure_frames += 1
            if self._unsure_frames > self._memory_frames:
                self.bpm = 0.0

    def _start_phase(self) -> None:
        """Set the phase from the pulse train, one beat apart, that best fits recent onsets."""
        period = 60.0 * self._frame_rate / self.bpm
        beats_back = np.arange(min(FIT_BEATS, int(self._filled / period) - 1))
        offsets = np.arange(math.ceil(period))  # frames since the latest beat was detected
        frames_back = np.rint(offsets[:, None] + beats_back[None, :] * period).astype(int)
        fit = self._history[-1 - frames_back].sum(axis=1)
        since_beat = offsets[int(np.argmax(fit))] + self._latency_frames
        self._position = math.floor(self._position) + (since_beat / period) % 1.0


def _comb(periods: np.ndarray, lags: int) -> np.ndarray:
    """Rows of weights over autocorrelation lags, one per candidate period (see the module doc).

    A fractional lag is shared between its two neighbouring whole lags (linear interpolation).
    """
    comb = np.zeros((len(periods), lags))
    rows = np.arange(len(periods))
    for multiple, weight in ((1.0, 1.0), (2.0, 1.0), (0.5, -HALFWAY), (1.5, -HALFWAY)):
        lag = multiple * periods
        below = np.floor(lag).astype(int)
        share = lag - below
        np.add.at(comb, (rows, below), weight * (1 - share) / 2)
        np.add.at(comb, (rows, below + 1), weight * share / 2)
    return comb


def _refine(correlation: np.ndarray, period: float) -> float:
    """The beat period (frames), found between whole lags from the correlation peaks at its
    multiples: each peak's centroid (±2 lags), then a line through the origin fitted to them.
    """
    multiples, centres = [], []
    for multiple in range(1, int((len(correlation) - 3) / period) + 1):
        lags = np.arange(round(multiple * period) - 2, round(multiple * period) + 3)
        weights = np.maximum(correlation[lags], 0.0)
        if weights.sum() > 0:
            multiples.append(multiple)
            centres.append(float(weights @ lags) / float(weights.sum()))
    k = np.asarray(multiples, dtype=float)
    return float(k @ np.asarray(centres) / (k @ k)) if multiples else period

"""Audio features from synthesised signals with known answers: tempo, onsets, bands, chroma."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import pickle
from collections.abc import Mapping

import numpy as np
import pytest

from perform.audio.features import REST, Analyzer, AudioFeatures

RATE = 48000
HOP = 512
HOP_SECONDS = HOP / RATE  # 10.7 ms: the framing latency of an onset is 0 to one hop


def seconds(duration: float) -> np.ndarray:
    return np.arange(round(duration * RATE)) / RATE


def clicks(bpm: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2 kHz blip (2 ms) on every beat from 0.1 s; also the beat times."""
    signal = np.zeros(round(duration * RATE))
    times = np.arange(0.1, duration - 0.01, 60.0 / bpm)
    blip = np.sin(2 * np.pi * 2000 * seconds(0.002)) * np.exp(-seconds(0.002) * 1000)
    for t in times:
        start = round(t * RATE)
        signal[start:start + len(blip)] += blip
    return signal.astype(np.float32), times


def band_noise(low: float, high: float, duration: float, seed: int = 1) -> np.ndarray:
    """White noise with everything outside low..high Hz cut away in the FFT."""
    size = round(duration * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(size))
    frequencies = np.fft.rfftfreq(size, 1 / RATE)
    spectrum[(frequencies < low) | (frequencies >= high)] = 0
    noise = np.fft.irfft(spectrum, size)
    return noise / np.abs(noise).max() * 0.5


def bursts(noise: np.ndarray, starts: np.ndarray, length: float, fade: float) -> np.ndarray:
    """`noise` heard only in bursts, faded in and out so the edges don't splash into other
    bands."""
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(round(fade * RATE)) / round(fade * RATE))
    shape = np.ones(round(length * RATE))
    shape[:len(ramp)], shape[-len(ramp):] = ramp, ramp[::-1]
    gain = np.zeros(len(noise))
    for t in starts:
        gain[round(t * RATE):round(t * RATE) + len(shape)] = shape
    return (noise * gain).astype(np.float32)


def chord(duration: float, notes: tuple[float, ...] = (261.63, 329.63, 392.0)) -> np.ndarray:
    """C major, three harmonics a note, held."""
    t = seconds(duration)
    tone = sum(0.3 / h * np.sin(2 * np.pi * f * h * t) for f in notes for h in (1, 2, 3))
    return (tone / np.abs(tone).max() * 0.5).astype(np.float32)


def music(duration: float) -> np.ndarray:
    """Clicks at 120 BPM, a bass burst every other beat and a chord: a bit of everything."""
    beat, _ = clicks(120, duration)
    bass = bursts(band_noise(60, 200, duration), np.arange(0.1, duration - 0.3, 1.0), 0.2, 0.02)
    return (0.5 * beat + 0.5 * bass + 0.4 * chord(duration)).astype(np.float32)


def analyse(signal: np.ndarray, analyzer: Analyzer | None = None,
            block: int = HOP) -> list[AudioFeatures]:
    """The snapshot after each block (one per hop by default)."""
    analyzer = analyzer or Analyzer(RATE)
    snapshots = []
    for start in range(0, len(signal), block):
        analyzer.feed(signal[start:start + block])
        snapshots.append(analyzer.features)
    return snapshots


def counted_at(snapshots: list[AudioFeatures], count: str) -> np.ndarray:
    """The times of the snapshots where counter `count` went up."""
    values = np.array([getattr(f, count) for f in snapshots])
    return np.array([f.time for f in snapshots])[np.flatnonzero(np.diff(values, prepend=0))]


def numbers(features: AudioFeatures, names: tuple[str, ...] = ()) -> list[float]:
    """The values of the fields `names` (all by default), flattened."""
    values: list[float] = []
    for name in names or [item.name for item in dataclasses.fields(features)]:
        value = getattr(features, name)
        if isinstance(value, Mapping):
            values.extend(value.values())
        elif isinstance(value, tuple):
            values.extend(value)
        else:
            values.append(value)
    return [float(v) for v in values]


IN_0_TO_1 = ("level", "bands", "onset", "band_onsets", "phase", "chroma", "percussive",
             "harmonic")
COUNTERS = ("onsets", "band_onset_counts", "beats")


@functools.cache
def click_track(bpm: float) -> tuple[list[AudioFeatures], np.ndarray]:
    signal, times = clicks(bpm, 9.0)
    return analyse(signal), times


@pytest.mark.parametrize("bpm", [90, 128, 174])
def test_a_click_track_gives_its_tempo_within_1_bpm_by_8_seconds(bpm):
    snapshots, _ = click_track(bpm)
    locked = [f for f in snapshots if f.bpm]
    assert locked and locked[0].time <= 8.0
    assert all(abs(f.bpm - bpm) <= 1.0 for f in locked)


@pytest.mark.parametrize("bpm", [90, 128, 174])
def test_each_click_is_one_onset_counted_within_a_hop(bpm):
    snapshots, times = click_track(bpm)
    detected = counted_at(snapshots, "onsets")
    assert len(detected) == len(times)
    late = detected - times
    assert late.min() >= 0.0  # causal: never before the click
    assert late.max() <= HOP_SECONDS + 0.002  # the first frame that holds the click


@pytest.mark.parametrize("bpm", [90, 128, 174])
def test_beats_fall_on_the_clicks_once_locked(bpm):
    snapshots, times = click_track(bpm)
    lock = next(f.time for f in snapshots if f.bpm)
    beats = counted_at(snapshots, "beats")
    assert len(beats) >= np.sum(times > lock) - 1
    off = np.array([np.min(np.abs(times - t)) for t in beats])
    assert off.max() <= 0.02  # 20 ms, a hop of it from counting on the next frame


@pytest.mark.parametrize(("frequency", "pitch_class"), [(440.0, 9), (261.63, 0)])
def test_a_sine_peaks_at_its_pitch_class(frequency, pitch_class):
    tone = (0.5 * np.sin(2 * np.pi * frequency * seconds(0.5))).astype(np.float32)
    chroma = analyse(tone)[-1].chroma
    assert int(np.argmax(chroma)) == pitch_class
    assert max(chroma) == 1.0


@pytest.mark.parametrize(("low", "high", "band"), [(60, 200, "low"), (6000, 12000, "high")])
def test_band_limited_noise_bursts_light_their_band_only(low, high, band):
    starts = np.arange(0.1, 2.5, 0.5)
    snapshots = analyse(bursts(band_noise(low, high, 3.0), starts, 0.2, fade=0.03))
    # the first burst sets the scale: its first frames, all edge, may light a neighbour
    settled = [f for f in snapshots if f.time > starts[1]]
    for name in ("low", "mid", "high"):
        loudest = max(f.bands[name] for f in settled)
        counted = snapshots[-1].band_onset_counts[name]
        if name == band:
            assert loudest > 0.9 and counted >= len(starts)
        else:  # leakage across the band edge, about -35 dB below the lit band
            assert loudest < 0.15 and counted == 0


def test_silence_is_rest():
    snapshots = analyse(np.zeros(3 * RATE, np.float32))
    assert snapshots[-1].time == pytest.approx(3.0, abs=HOP_SECONDS)
    assert all(dataclasses.replace(f, time=0.0) == REST for f in snapshots)


def test_values_fall_back_to_rest_when_the_music_stops():
    heard = music(2.0)
    snapshots = analyse(np.concatenate((heard, np.zeros(round(2.5 * RATE), np.float32))))
    faded = ("level", "bands", "onset", "band_onsets", "chroma", "percussive", "harmonic")
    assert all(v < 0.01 for v in numbers(snapshots[-1], faded))  # the beat phase goes on
    assert numbers(snapshots[-1], COUNTERS) == numbers(snapshots[round(2.1 / HOP_SECONDS)],
                                                       COUNTERS)


def test_a_held_chord_has_no_tempo():
    snapshots = analyse(chord(7.0))
    assert all(f.bpm == 0.0 for f in snapshots)
    assert snapshots[-1].onsets == 1


def test_the_same_music_30_db_quieter_reads_the_same():
    loud = music(4.0)
    quiet = (loud * 10 ** (-30 / 20)).astype(np.float32)
    settled = round(1.0 / HOP_SECONDS)  # after the first second
    for a, b in zip(analyse(loud)[settled:], analyse(quiet)[settled:], strict=True):
        assert numbers(a, IN_0_TO_1) == pytest.approx(numbers(b, IN_0_TO_1), abs=0.01)
        assert numbers(a, COUNTERS) == numbers(b, COUNTERS)
        assert a.bpm == pytest.approx(b.bpm, abs=0.1)


def test_a_clipped_square_wave_stays_in_0_to_1():
    square = np.sign(np.sin(2 * np.pi * 110 * seconds(2.0)))
    for amplitude in (1.0, 1e30):  # clipped at full scale; or absurdly loud
        clipped = np.clip(4.0 * square, -1.0, 1.0) * amplitude
        for features in analyse(clipped):
            assert all(math.isfinite(v) for v in numbers(features))
            assert all(0.0 <= v <= 1.0 for v in numbers(features, IN_0_TO_1))


def test_nan_and_inf_samples_are_read_as_silence_and_counted():
    clean = music(2.0)
    broken = clean.copy()
    holes = np.random.default_rng(2).choice(len(clean), 500, replace=False)
    broken[holes[:300]], broken[holes[300:450]], broken[holes[450:]] = np.nan, np.inf, -np.inf
    clean[holes] = 0.0
    analyzer = Analyzer(RATE)
    assert analyse(broken, analyzer) == analyse(clean)
    assert analyzer.nonfinite_samples == 500


def test_features_before_a_change_do_not_depend_on_what_follows():
    change = 1.2345  # seconds, not on a hop
    past = music(3.0)
    other_future = past.copy()
    other_future[round(change * RATE):] = band_noise(6000, 12000, 3.0)[round(change * RATE):]
    first = analyse(past, block=300)
    second = analyse(other_future, block=300)
    before = [i for i, f in enumerate(first) if f.time <= change]
    assert len(before) > 100
    assert [first[i] for i in before] == [second[i] for i in before]
    assert first[-1] != second[-1]


def test_blocks_of_any_length_give_the_same_features():
    signal = music(1.5)
    one_hop_at_a_time = analyse(signal)[-1]
    analyzer = Analyzer(RATE)
    cuts = np.cumsum([0, 0, 1, 100, 511, 513, 4096, 2, 0, 7000])
    for start, end in itertools.pairwise(cuts):
        analyzer.feed(signal[start:end])
    analyzer.feed(signal[cuts[-1]:])
    assert analyzer.features == one_hop_at_a_time


def test_percussive_for_clicks_and_noise_hits_harmonic_for_a_held_chord():
    hits = bursts(band_noise(20, 20000, 3.0), np.arange(0.1, 2.8, 0.5), 0.04, fade=0.005)
    for signal, percussive in ((clicks(120, 3.0)[0], True), (hits, True), (chord(3.0), False)):
        heard = [f for f in analyse(signal) if f.level > 0.1]
        mean_percussive = np.mean([f.percussive for f in heard])
        mean_harmonic = np.mean([f.harmonic for f in heard])
        if percussive:
            assert mean_percussive > 2 * mean_harmonic
        else:
            assert mean_harmonic > 4 * mean_percussive


def test_reset_forgets_the_music():
    analyzer = Analyzer(RATE)
    fresh = analyse(music(1.0))
    analyse(music(2.0), analyzer)
    analyzer.feed(np.array([np.nan], np.float32))
    analyzer.reset()
    assert analyzer.features == REST and analyzer.nonfinite_samples == 0
    assert analyse(music(1.0), analyzer) == fresh


def test_bands_read_as_attributes_and_names_are_checked():
    assert REST.low == 0.0 and REST.bands == {"low": 0.0, "mid": 0.0, "high": 0.0}
    features = analyse(music(1.0))[-1]
    assert features.high == features.bands["high"] > 0.0
    assert pickle.loads(pickle.dumps(features)) == features  # a snapshot can go anywhere
    with pytest.raises(AttributeError):
        _ = features.treble
    custom = analyse(music(0.5), Analyzer(RATE, {"sub": (20, 60), "air": (10000, 20000)}))[-1]
    assert set(custom.bands) == set(custom.band_onset_counts) == {"sub", "air"}
    with pytest.raises(ValueError, match="hide"):
        Analyzer(RATE, {"level": (20, 200)})
    with pytest.raises(ValueError, match="no FFT bin"):
        Analyzer(RATE, {"nothing": (100, 101)})

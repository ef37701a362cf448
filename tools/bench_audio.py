"""Audio features: what a hop costs, and how well the beat tracker follows known tempos.

    .venv/bin/python tools/bench_audio.py [--rate 48000] [--seconds 20] [--track-seconds 12]

Cost: `Analyzer.feed` timed call by call, one hop-sized block each (as a live input hands
them over), over `--seconds` of a drum pattern with a held chord, after a second of
warm-up; median and p99, at hop 512 and 256 (window 2048). The objects alive before the
runs are frozen out of the garbage collector first: importing `perform` brings torch, and a
full collection over its ~170k objects takes ~60 ms on whatever thread happens to trigger it
(a live source feeding the analyser may want `gc.freeze()` after start-up too).

Tempo: click tracks (a 2 ms blip on every beat) and a drum pattern (kick on 1 and 3, snare
on 2 and 4, a closed hat on every eighth) at 90, 128 and 174 BPM, `--track-seconds` long,
fed one hop at a time at hop 512. For each: the bpm at the end; when it locked (the first
snapshot with a bpm) and whether every reading from then on was within ±1 BPM; onset
timing, each sound's nearest counted onset minus when it sounded (counted within 50 ms:
how many, median and p99); beat timing, each beat counted after lock minus the nearest
true beat (median and p99 of the absolute error). Onsets and beats are read at the end of
the hop that counted them, so up to one hop (10.7 ms) of every error is the framing.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from perform.audio.features import Analyzer, AudioFeatures

TEMPOS = (90, 128, 174)


def blip(rate: int) -> np.ndarray:
    t = np.arange(round(0.002 * rate)) / rate
    return np.sin(2 * np.pi * 2000 * t) * np.exp(-t * 1000)


def kick(rate: int) -> np.ndarray:
    t = np.arange(round(0.25 * rate)) / rate
    pitch = 50 + 100 * np.exp(-t / 0.03)  # Hz, falling from 150 to 50
    return np.sin(2 * np.pi * np.cumsum(pitch) / rate) * np.exp(-t / 0.12)


def snare(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(0.2 * rate)) / rate
    return (0.6 * rng.standard_normal(len(t)) + 0.5 * np.sin(2 * np.pi * 190 * t)) \
        * np.exp(-t / 0.05)


def hat(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(0.05 * rate)) / rate
    return 0.25 * np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.012)


def place(signal: np.ndarray, sound: np.ndarray, at: float, rate: int) -> None:
    start = round(at * rate)
    end = min(len(signal), start + len(sound))
    signal[start:end] += sound[:end - start]


def click_track(bpm: float, seconds: float, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The signal, when each sound starts, and the beats."""
    signal = np.zeros(round(seconds * rate))
    beats = np.arange(0.1, seconds - 0.01, 60.0 / bpm)
    for t in beats:
        place(signal, blip(rate), t, rate)
    return signal.astype(np.float32), beats, beats


def drum_pattern(bpm: float, seconds: float, rate: int,
                 seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The signal, when each sound starts (every eighth has a hat), and the beats."""
    rng = np.random.default_rng(seed)
    signal = np.zeros(round(seconds * rate))
    eighths = np.arange(0.1, seconds - 0.01, 30.0 / bpm)
    for i, t in enumerate(eighths):
        if i % 2 == 0:
            place(signal, kick(rate) if i % 4 == 0 else snare(rate, rng), t, rate)
        place(signal, hat(rate, rng), t, rate)
    return (0.5 * signal).astype(np.float32), eighths, eighths[::2]


def held_chord(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return sum(0.05 / h * np.sin(2 * np.pi * f * h * t)
               for f in (261.63, 329.63, 392.0) for h in (1, 2, 3))


def analyse(signal: np.ndarray, analyzer: Analyzer,
            hop: int) -> tuple[list[AudioFeatures], np.ndarray]:
    """Feeds a hop at a time; the snapshot after each and the seconds each feed took."""
    snapshots, costs = [], []
    for start in range(0, len(signal) - hop + 1, hop):
        block = signal[start:start + hop]
        began = time.perf_counter()
        analyzer.feed(block)
        costs.append(time.perf_counter() - began)
        snapshots.append(analyzer.features)
    return snapshots, np.asarray(costs)


def counted_at(snapshots: list[AudioFeatures], count: str) -> np.ndarray:
    values = np.array([getattr(f, count) for f in snapshots])
    return np.array([f.time for f in snapshots])[np.flatnonzero(np.diff(values, prepend=0))]


def ms(values: np.ndarray) -> str:
    if not len(values):
        return "none"
    median, p99 = np.median(values) * 1e3, np.percentile(values, 99) * 1e3
    return f"median {median:5.1f} ms, p99 {p99:5.1f} ms"


def bench_cost(rate: int, seconds: float) -> None:
    drums, _, _ = drum_pattern(128, seconds + 1.0, rate)
    music = (drums + held_chord(seconds + 1.0, rate)).astype(np.float32)
    gc.collect()
    gc.freeze()
    for hop in (512, 256):
        _, costs = analyse(music, Analyzer(rate, hop=hop), hop)
        costs = costs[round(rate / hop):]  # after a second of warm-up
        hop_ms = hop / rate * 1e3
        print(f"hop {hop:3d} ({hop_ms:4.1f} ms): feed median {np.median(costs) * 1e6:4.0f} us, "
              f"p99 {np.percentile(costs, 99) * 1e6:4.0f} us, max {costs.max() * 1e6:5.0f} us "
              f"({np.median(costs) * 1e3 / hop_ms:.1%} of real time, n={len(costs)})")


def bench_tempo(rate: int, seconds: float) -> None:
    hop = 512
    for name, make in (("clicks", click_track), ("drums", drum_pattern)):
        for bpm in TEMPOS:
            signal, sounds, beats = make(bpm, seconds, rate)
            snapshots, _ = analyse(signal, Analyzer(rate, hop=hop), hop)
            locked = [f for f in snapshots if f.bpm]
            lock = f"{locked[0].time:4.1f} s" if locked else "never"
            held = locked and all(abs(f.bpm - bpm) <= 1.0 for f in locked)
            onsets = counted_at(snapshots, "onsets")
            late = np.array([onsets[np.argmin(np.abs(onsets - t))] - t for t in sounds]) \
                if len(onsets) else np.array([])
            found = late[np.abs(late) <= 0.05]
            counted = counted_at(snapshots, "beats")
            beat_error = np.array([np.min(np.abs(beats - t)) for t in counted])
            print(f"{name:6s} {bpm:3d} BPM: read {snapshots[-1].bpm:6.2f}, locked at {lock}"
                  f"{', held ±1' if held else ', NOT held ±1'}; onsets {len(found)}/{len(sounds)}"
                  f" found (+{ms(found)}, {len(onsets) - len(found)} extra); "
                  f"beats |{ms(beat_error)}|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--track-seconds", type=float, default=12.0)
    args = parser.parse_args()
    print(f"cost per hop at {args.rate} Hz, window 2048:")
    bench_cost(args.rate, args.seconds)
    print(f"\ntempo and timing at {args.rate} Hz, hop 512 (framing: up to 10.7 ms late):")
    bench_tempo(args.rate, args.track_seconds)


if __name__ == "__main__":
    main()

"""Following a MIDI clock: tempo and beat from jittery ticks, start/stop/continue/position."""

from __future__ import annotations

import random

import numpy as np
import pytest

from perform.tempo.midi_clock import TICKS_PER_BEAT, ClockFollower


def ticks(bpm: float, count: int, start: float = 10.0, jitter: float = 0.0, seed: int = 0):
    """Arrival times of `count` ticks at `bpm`, each late or early by up to `jitter` seconds."""
    rng = random.Random(seed)
    period = 60.0 / (bpm * TICKS_PER_BEAT)
    return [start + k * period + rng.gauss(0.0, jitter) for k in range(count)], period


@pytest.mark.parametrize("bpm", [90.0, 128.0, 174.0])
def test_a_jittery_clock_reads_as_a_steady_tempo_and_beat(bpm):
    arrivals, period = ticks(bpm, 32 * TICKS_PER_BEAT, jitter=0.001)
    clock = ClockFollower(bpm=120.0)
    clock.start(arrivals[0] - 0.01)
    errors = []
    for k, arrival in enumerate(arrivals):
        clock.tick(arrival)
        if k > 8 * TICKS_PER_BEAT:  # after two bars of settling
            now = 10.0 + (k + 0.5) * period  # between two ticks
            errors.append(clock.reading(now).beat - (k + 0.5) / TICKS_PER_BEAT)
    reading = clock.reading(arrivals[-1])
    assert reading.bpm == pytest.approx(bpm, rel=0.003)
    assert reading.running
    # 1 ms of jitter is 3 to 6 % of a tick; the beat stays within a small part of one tick
    assert np.percentile(np.abs(errors), 99) < 0.6 / TICKS_PER_BEAT


def test_start_puts_beat_zero_on_the_first_tick_and_a_stalled_clock_holds():
    arrivals, period = ticks(120.0, 3)
    clock = ClockFollower(bpm=120.0)
    clock.start(9.99)
    assert clock.reading(9.995).beat == 0.0
    clock.tick(arrivals[0])
    assert clock.reading(arrivals[0]).beat == 0.0
    assert clock.reading(arrivals[0] + period / 2).beat == pytest.approx(0.5 / TICKS_PER_BEAT)
    for arrival in arrivals[1:]:
        clock.tick(arrival)
    stalled = clock.reading(arrivals[-1] + 5.0).beat  # the sender froze: no runaway
    assert stalled == pytest.approx(3 / TICKS_PER_BEAT)


def test_stop_holds_continue_resumes_and_song_position_jumps():
    arrivals, period = ticks(120.0, 48)
    clock = ClockFollower()
    clock.start(9.99)
    for arrival in arrivals:
        clock.tick(arrival)
    clock.stop(arrivals[-1] + 0.001)
    held = clock.reading(arrivals[-1] + 0.001).beat
    assert clock.reading(arrivals[-1] + 3.0).beat == held
    assert not clock.reading(20.0).running
    clock.tick(20.0)  # ticks while stopped (many devices send them) do not move it
    assert clock.reading(20.0).beat == held

    clock.resume(30.0)
    clock.tick(30.01)
    assert clock.reading(30.01).beat == pytest.approx(48 / TICKS_PER_BEAT)  # the next tick

    clock.stop(31.0)
    clock.song_position(16)  # sixteen sixteenths: bar 2, beat 1
    assert clock.reading(31.0).beat == 4.0
    clock.resume(32.0)
    clock.tick(32.01)
    assert clock.reading(32.01).beat == 4.0
    clock.tick(32.01 + period)
    assert clock.reading(32.01 + period).beat == pytest.approx(4.0 + 1 / TICKS_PER_BEAT)


def test_a_tempo_change_is_followed_within_a_few_beats():
    first, _ = ticks(120.0, 8 * TICKS_PER_BEAT)
    second, _ = ticks(140.0, 16 * TICKS_PER_BEAT, start=first[-1] + 60 / 140 / 24)
    clock = ClockFollower()
    clock.start(9.99)
    for arrival in first:
        clock.tick(arrival)
    beats_in = []
    for k, arrival in enumerate(second):
        clock.tick(arrival)
        if abs(clock.reading(arrival).bpm - 140.0) < 1.4 and not beats_in:
            beats_in.append(k / TICKS_PER_BEAT)
    assert beats_in and beats_in[0] <= 8.0, beats_in
    assert clock.reading(second[-1]).bpm == pytest.approx(140.0, rel=0.005)


def test_dropped_ticks_keep_the_count():
    arrivals, _ = ticks(120.0, 96)
    clock = ClockFollower()
    clock.start(9.99)
    for k, arrival in enumerate(arrivals):
        if not 40 <= k < 52:  # half a beat of ticks lost on the way
            clock.tick(arrival)
    assert clock.reading(arrivals[-1]).beat == pytest.approx(95 / TICKS_PER_BEAT)


def test_ticks_that_arrive_in_bunches_once_per_audio_period_still_read_steady():
    """JACK hands a period's MIDI events over together: 21 ms periods bunch ticks that are
    20.8 ms apart at 120 BPM in twos and none. The fit reads through it."""
    cycle = 1024 / 48000
    arrivals, _ = ticks(120.0, 16 * TICKS_PER_BEAT)
    bunched = [(int(t / cycle) + 1) * cycle for t in arrivals]
    clock = ClockFollower(bpm=90.0)
    clock.start(bunched[0] - 0.01)
    bpms = []
    for k, arrival in enumerate(bunched):
        clock.tick(arrival)
        if k >= 4 * TICKS_PER_BEAT:
            bpms.append(clock.reading(arrival).bpm)
    assert max(abs(bpm - 120.0) for bpm in bpms) < 0.5
    assert clock.reading(bunched[-1]).beat == pytest.approx((len(bunched) - 1) / TICKS_PER_BEAT)


def test_a_single_lost_tick_is_counted_when_the_clock_is_steady():
    arrivals, _ = ticks(128.0, 8 * TICKS_PER_BEAT, jitter=0.0003)
    clock = ClockFollower(bpm=128.0)
    clock.start(arrivals[0] - 0.01)
    for k, arrival in enumerate(arrivals):
        if k not in (50, 120):  # two ticks lost, far apart
            clock.tick(arrival)
    assert clock.reading(arrivals[-1]).beat == pytest.approx((len(arrivals) - 1) / TICKS_PER_BEAT)

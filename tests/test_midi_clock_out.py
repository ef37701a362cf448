"""MIDI clock out: what a drum machine following perform's clock hears, tick by tick.

No ports: the sender's messages go to a list, stamped with the real time and the fake tempo's
beat. The fake tempo runs on `time.monotonic()` at 240 BPM (a tick every ~10.4 ms) and starts
half a beat before a bar line, so every test takes about a second.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise

import mido
import pytest

from perform.midi.clock_out import ClockSender
from perform.tempo import TempoReading

BPM = 240.0
TICKS = 24  # a beat
TICK = 60.0 / BPM / TICKS  # seconds
THREAD = "perform-midi-clock"


class FakeTempo:
    """A tempo source on the real clock that a test can make jump."""

    def __init__(self, beat: float, bpm: float = BPM) -> None:
        self.bpm = bpm
        self.start_beat = beat
        self.t0 = time.monotonic()
        self.offset = 0.0  # beats added by jumps

    def beat(self) -> float:
        return self.start_beat + self.offset + (time.monotonic() - self.t0) * self.bpm / 60.0

    def reading(self) -> TempoReading:
        return TempoReading(self.beat(), self.bpm)

    def when(self, beat: float) -> float:
        """The monotonic time at which the (unjumped) beat is reached."""
        return self.t0 + (beat - self.start_beat) * 60.0 / self.bpm

    def jump(self, beats: float) -> None:
        self.offset += beats


@dataclass
class Sent:
    time: float
    kind: str
    beat: float  # the fake tempo's beat when it was sent


@dataclass
class Receiver:
    """Everything the sender sent, in order."""

    tempo: FakeTempo
    sent: list[Sent] = field(default_factory=list)

    def __call__(self, message: mido.Message) -> None:
        self.sent.append(Sent(time.monotonic(), message.type, self.tempo.beat()))

    def kinds(self) -> list[str]:
        return [item.kind for item in self.sent]

    def ticks(self) -> list[Sent]:
        return [item for item in list(self.sent) if item.kind == "clock"]


@dataclass
class Clock:
    tempo: FakeTempo
    receiver: Receiver
    sender: ClockSender
    thread: threading.Thread


def running(beat: float, beats_per_bar: int = 4) -> Clock:
    tempo = FakeTempo(beat)
    receiver = Receiver(tempo)
    sender = ClockSender(tempo.reading, receiver, beats_per_bar)
    before = set(threading.enumerate())
    sender.start()
    [thread] = [t for t in set(threading.enumerate()) - before if t.name == THREAD]
    return Clock(tempo, receiver, sender, thread)


@pytest.fixture
def clock() -> Iterator[Clock]:
    """A clock started half a beat (125 ms) before the bar line at beat 4."""
    started = running(3.5)
    yield started
    started.sender.close()


def sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.monotonic(), 0.0))


def lateness(ticks: list[Sent], first: int) -> list[float]:
    """How far, in ticks, each tick was sent after its place on the schedule, counting the
    ticks since Start: tick n (from 0) belongs at beat position `first + n` ticks."""
    return [item.beat * TICKS - (first + n) for n, item in enumerate(ticks)]


def test_start_is_sent_once_on_the_next_bar_line(clock: Clock) -> None:
    sleep_until(clock.tempo.when(4.5))
    kinds = clock.receiver.kinds()
    assert kinds[0] == "start"
    assert kinds.count("start") == 1
    assert "stop" not in kinds
    start = clock.receiver.sent[0]
    assert -0.002 <= start.time - clock.tempo.when(4.0) <= 0.02
    assert start.beat >= 4.0 - 1e-9
    first_tick = clock.receiver.sent[1]
    assert first_tick.kind == "clock"
    assert first_tick.time - start.time < 0.005  # the bar's first tick comes with Start


def test_nothing_is_sent_before_the_bar_line(clock: Clock) -> None:
    sleep_until(clock.tempo.when(3.9))
    assert clock.receiver.sent == []


def test_start_follows_the_bar_length() -> None:
    waltz = running(2.5, beats_per_bar=3)
    try:
        sleep_until(waltz.tempo.when(3.2))
        start = waltz.receiver.sent[0]
        assert start.kind == "start"
        assert -0.002 <= start.time - waltz.tempo.when(3.0) <= 0.02
    finally:
        waltz.sender.close()


def test_ticks_come_24_to_the_beat(clock: Clock) -> None:
    sleep_until(clock.tempo.when(8.2))  # a whole bar after Start: about one second
    ticks = [item for item in clock.receiver.ticks() if item.beat < 8.0]
    assert abs(len(ticks) - 4 * TICKS) <= 2
    intervals = (ticks[-1].time - ticks[0].time) / (len(ticks) - 1)
    assert intervals == pytest.approx(TICK, rel=0.02)
    assert min(lateness(ticks, 4 * TICKS)) >= -1e-6  # no tick before its time
    assert statistics.median(lateness(ticks, 4 * TICKS)) < 0.5
    assert clock.sender.ticks >= len(ticks)


def test_a_late_wake_up_sends_the_missed_ticks_at_once(clock: Clock) -> None:
    sleep_until(clock.tempo.when(5.0) + TICK / 2)  # between two ticks, after Start
    jumped_at = time.monotonic()
    clock.tempo.jump(3 / TICKS)  # as if the thread had slept three ticks too long
    sleep_until(clock.tempo.when(6.0))
    ticks = clock.receiver.ticks()
    late = lateness(ticks, 4 * TICKS)
    assert min(late) >= -1e-6  # none early
    assert statistics.median(late[-TICKS // 2:]) < 1.5  # none lost: still on the schedule
    after = [item.time for item in ticks if item.time >= jumped_at]
    assert after[2] - after[0] < 0.005  # the three missed ticks went out together


def test_a_big_jump_resynchronises_without_a_burst(clock: Clock) -> None:
    sleep_until(clock.tempo.when(5.0) + TICK / 2)
    jumped_at = time.monotonic()
    clock.tempo.jump(2.5)  # a Link peer restarted: 60 ticks ahead
    sleep_until(clock.tempo.when(6.0))
    after = [item for item in clock.receiver.ticks() if item.time >= jumped_at]
    times = [item.time for item in after]
    burst = max(sum(1 for t in times if start <= t < start + TICK / 2) for start in times)
    assert burst <= 2
    # back on the (jumped) beat's schedule, a tick every 1/24 beat
    assert abs(len(after) - TICKS) <= 3
    assert (times[-1] - times[0]) / (len(times) - 1) == pytest.approx(TICK, rel=0.05)
    # each sent just after its own place on the new schedule, not at a stale phase
    assert statistics.median(item.beat * TICKS % 1.0 for item in after[1:]) < 0.5


def test_a_jump_back_keeps_the_clock_going(clock: Clock) -> None:
    sleep_until(clock.tempo.when(5.0) + TICK / 2)
    jumped_at = time.monotonic()
    clock.tempo.jump(-2.5)
    sleep_until(clock.tempo.when(6.0))
    times = [item.time for item in clock.receiver.ticks() if item.time >= jumped_at]
    assert abs(len(times) - TICKS) <= 3
    assert max(b - a for a, b in pairwise(times)) < 4 * TICK


def test_close_sends_stop_and_ends_the_thread(clock: Clock) -> None:
    sleep_until(clock.tempo.when(4.5))
    asked = time.monotonic()
    clock.sender.close()
    assert time.monotonic() - asked < 0.5
    assert not clock.thread.is_alive()
    kinds = clock.receiver.kinds()
    assert kinds[-1] == "stop"
    assert kinds.count("stop") == 1
    count = len(kinds)
    time.sleep(5 * TICK)
    assert len(clock.receiver.sent) == count  # silence after Stop


def test_closing_before_the_bar_line_sends_nothing() -> None:
    early = running(0.5)  # the bar line is 3.5 beats (875 ms) away
    time.sleep(0.05)
    early.sender.close()
    assert not early.thread.is_alive()
    assert early.receiver.sent == []

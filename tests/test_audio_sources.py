"""Audio sources: files decoded and fed by the show's clock, and a live input recorded for real.

The live tests run a JACK server on its dummy driver (no sound card) and a tone player, a
second process that plays 440 Hz on its channel 1 and silence on its channel 2. PortAudio's
JACK backend shows every JACK client as a device, so the player is an input device like a
sound card; opening it connects its outputs to perform's capture process, and what perform
records is exactly what the player played.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import av
import numpy as np
import pytest
import soundfile
from conftest import Listener, wait_for
from jack import JackUnavailable, jack_server

from perform.audio.listen import AudioConfig
from perform.audio.sources import (
    AudioError,
    AudioUnavailable,
    FileInput,
    LiveInput,
    list_devices,
)

# a thread that dies with an exception is a failure here, not a warning
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

RATE = 44100  # of the test files
TONE = 440.0


def music(seconds: float = 1.5) -> np.ndarray:
    """Stereo: a 440 Hz tone on the left, a click every 0.25 s on the right."""
    t = np.arange(round(seconds * RATE)) / RATE
    clicks = np.zeros_like(t)
    clicks[:: RATE // 4] = 0.9
    return np.stack([0.5 * np.sin(2 * np.pi * TONE * t), clicks], axis=1).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency, to a fraction of a bin (parabolic interpolation)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    i = int(spectrum[1:-1].argmax()) + 1
    a, b, c = np.log(spectrum[i - 1:i + 2] + 1e-12)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(samples)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


# ---- files --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "mp3"])
def test_a_file_is_read_whole_and_mixed_to_mono(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"music.{kind}"
    soundfile.write(path, music(), RATE)
    source = FileInput(path, lambda block: None)
    assert source.sample_rate == RATE and source.channels == 2
    assert source.samples.dtype == np.float32 and source.samples.ndim == 1
    assert source.duration == pytest.approx(1.5, abs=0.002)
    decoded, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_allclose(source.samples, decoded.mean(axis=1), atol=1e-6)
    if kind in ("wav", "flac"):  # lossless (16 bits): the mix of what was written
        np.testing.assert_allclose(source.samples, music().mean(axis=1), atol=1e-4)
    assert peak_hz(source.samples, RATE) == pytest.approx(TONE, abs=1.0)


def test_what_libsndfile_cannot_read_goes_through_pyav(tmp_path: Path) -> None:
    if "aac" not in av.codecs_available:
        pytest.skip("this PyAV has no AAC encoder")
    path = tmp_path / "music.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="stereo")
        for start in range(0, round(1.5 * RATE), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(music()[start:start + 1024].T),
                                               format="fltp", layout="stereo")
            frame.sample_rate = RATE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(path)
    source = FileInput(path, lambda block: None)
    assert source.sample_rate == RATE and source.channels == 2
    assert source.duration == pytest.approx(1.5, abs=0.05)  # AAC pads with a frame or two
    assert peak_hz(source.samples, RATE) == pytest.approx(TONE, abs=1.0)


def test_advancing_frame_by_frame_feeds_exactly_the_samples_up_to_t(tmp_path: Path) -> None:
    path = tmp_path / "music.wav"
    soundfile.write(path, music(), RATE)
    blocks: list[np.ndarray] = []
    source = FileInput(path, blocks.append)
    fps = 24.0  # 1837.5 samples a frame: rounding must not drift
    for frame in range(1, 30):
        assert source.advance_to(frame / fps) is False
        assert sum(map(len, blocks)) == round(frame / fps * RATE)
    fed = np.concatenate(blocks)
    np.testing.assert_array_equal(fed, source.samples[:len(fed)])
    blocks[0][:] = 0  # the sink's to keep and change: the file is untouched
    assert source.samples[:10].any()
    assert source.status()["state"] == "running"

    for frame in range(30, 60):  # on past the end: the rest, then nothing
        source.advance_to(frame / fps)
    assert sum(map(len, blocks)) == len(source.samples)
    status = source.status()
    assert status["state"] == "ended" and status["position"] == pytest.approx(1.5)


def test_a_looping_file_wraps(tmp_path: Path) -> None:
    path = tmp_path / "music.flac"
    soundfile.write(path, music(), RATE)
    blocks: list[np.ndarray] = []
    source = FileInput(path, blocks.append, loop=True)
    t = 0.0
    while t < 3.8:  # two and a half times round
        t += 1 / 30
        source.advance_to(t)
    fed = np.concatenate(blocks)
    assert len(fed) == round(t * RATE)
    np.testing.assert_array_equal(fed, np.tile(source.samples, 3)[:len(fed)])
    assert source.status()["state"] == "running"
    assert source.status()["position"] == pytest.approx(t % 1.5, abs=1 / RATE)


def test_a_clock_that_jumps_restarts_there(tmp_path: Path) -> None:
    path = tmp_path / "music.wav"
    soundfile.write(path, music(), RATE)
    blocks: list[np.ndarray] = []
    source = FileInput(path, blocks.append, loop=True)
    assert source.advance_to(0.5) is False
    assert source.advance_to(4.0) is True  # a seek: nothing fed, the caller resets
    assert sum(map(len, blocks)) == round(0.5 * RATE)
    blocks.clear()
    source.advance_to(4.1)  # on from 4.0, which is 1.0 into the file
    np.testing.assert_array_equal(np.concatenate(blocks),
                                  source.samples[RATE:RATE + round(0.1 * RATE)])
    blocks.clear()
    assert source.advance_to(4.08) is False  # a hair back: wait for the clock to catch up
    assert source.advance_to(4.1) is False and not blocks
    assert source.advance_to(1.0) is True  # back by seconds: a seek
    assert source.status()["jumps"] == 2


def test_an_unreadable_file_says_which_and_why(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "good.wav", music(), RATE)
    soundfile.write(tmp_path / "good.flac", music(), RATE)
    wav = (tmp_path / "good.wav").read_bytes()
    bad = {
        "header-cut.wav": wav[:30],
        "cut-short.flac": (tmp_path / "good.flac").read_bytes()[:3000],
        "noise.flac": np.random.default_rng(1).bytes(5000),
        "notes.txt": b"not audio at all\n" * 20,
        "empty.wav": b"",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AudioError, match=re.escape(name)):
            FileInput(tmp_path / name, lambda block: None)
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        FileInput(tmp_path / "missing.wav", lambda block: None)
    # a WAV cut in the middle of its samples (a download that stopped) plays what there is
    (tmp_path / "half.wav").write_bytes(wav[:len(wav) // 2])
    assert FileInput(tmp_path / "half.wav", lambda block: None).duration == pytest.approx(
        0.75, abs=0.01)


# ---- live input through JACK --------------------------------------------------------------

PLAYER = """
import os, sys
import numpy as np
import sounddevice
played = 0
def play(out, frames, time, status):
    global played
    t = (played + np.arange(frames)) / stream.samplerate
    out[:, 0] = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    out[:, 1] = 0.0
    played += frames
stream = sounddevice.OutputStream(channels=2, dtype="float32", callback=play)
stream.start()
print("playing", flush=True)
sys.stdin.read()
stream.close()  # leave JACK politely, then skip sounddevice's exit handler
sounddevice._terminate()
os._exit(0)
"""


def test_without_portaudio_it_says_what_to_install(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the capture process finds this one
    with pytest.raises(AudioUnavailable, match="apt-get install libportaudio2"):
        list_devices()
    with pytest.raises(AudioUnavailable, match="PortAudio library not found"):
        LiveInput(lambda block: None).start()


def need_portaudio() -> None:
    try:
        list_devices()
    except AudioUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tone() -> Iterator[str]:
    """A JACK server with a tone player on it; yields the player's device name."""
    need_portaudio()
    try:
        with jack_server(audio=2, period=256):
            player = subprocess.Popen([sys.executable, "-c", PLAYER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            try:
                assert player.stdout.readline() == "playing\n"
                # "1: PortAudio (JACK Audio Connection Kit), 2 in, 48000 Hz": the player
                names = [label.split(": ", 1)[1].split(" (")[0] for label in list_devices()]
                yield next(name for name in names if name != "system")
            finally:
                player.stdin.close()
                player.wait(timeout=5)
    except JackUnavailable as exc:
        pytest.skip(f"no JACK server for the audio tests: {exc}")


def record(seconds: float, **options: object) -> tuple[np.ndarray, list[float], dict]:
    """What a LiveInput hands its sink in `seconds`, when each block came, and its status
    while it ran."""
    blocks: list[np.ndarray] = []
    arrivals: list[float] = []

    def sink(block: np.ndarray) -> None:
        blocks.append(block)
        arrivals.append(time.monotonic())

    source = LiveInput(sink, **options)
    source.start()
    try:
        time.sleep(seconds)
        status = source.status()
    finally:
        source.close()
    assert source.status()["state"] == "stopped"
    assert source.status()["blocks"] == len(blocks)
    assert all(len(block) == 256 and block.dtype == np.float32 for block in blocks)
    return np.concatenate(blocks), arrivals, status


def test_a_live_input_hears_the_tone(tone: str) -> None:
    samples, arrivals, status = record(1.0, device=tone.lower()[:5], channels=[1])  # "porta"
    assert status["state"] == "running" and status["last_error"] is None
    assert status["device"] == tone and status["sample_rate"] == 48000
    assert status["channels"] == [1]
    assert status["overflows"] < 10  # none when idle; a busy machine can make JACK skip a cycle
    assert len(samples) > 0.8 * 48000  # a second, less the start
    steady = samples[-32768:]
    assert peak_hz(steady, 48000) == pytest.approx(TONE, abs=2.0)
    assert rms(steady) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    periods = np.diff(arrivals)
    assert np.median(periods) == pytest.approx(256 / 48000, rel=0.2)  # 5.3 ms a block


def test_channels_are_chosen_and_averaged(tone: str) -> None:
    silent, _, status = record(0.4, device=tone, channels=[2])
    assert status["channels"] == [2] and rms(silent) < 1e-4
    both, _, status = record(0.4, device=tone)  # the default: inputs 1 and 2, averaged
    assert status["channels"] == [1, 2]
    assert rms(both[-8192:]) == pytest.approx(0.25 / np.sqrt(2), rel=0.03)
    with pytest.raises(AudioError, match=f"{tone} has inputs 1 to 2; asked for \\[3\\]"):
        LiveInput(lambda block: None, device=tone, channels=[3]).start()


def test_an_unknown_device_or_rate_says_what_there_is(tone: str) -> None:
    devices = list_devices()
    assert "0: system (JACK Audio Connection Kit), 2 in, 48000 Hz" in devices
    with pytest.raises(AudioError) as caught:
        LiveInput(lambda block: None, device="no-such-card").start()
    assert "no audio input matching 'no-such-card'; inputs: " in str(caught.value)
    assert all(device in str(caught.value) for device in devices)
    with pytest.raises(AudioError, match=r"cannot record at 44100 Hz.*runs at 48000 Hz"):
        LiveInput(lambda block: None, device="system", sample_rate=44100).start()


def test_a_sink_that_raises_does_not_stop_the_input(tone: str) -> None:
    calls: list[int] = []

    def sink(block: np.ndarray) -> None:
        calls.append(len(block))
        raise ValueError("analyser bug")

    source = LiveInput(sink, device=tone)
    source.start()
    try:
        wait_for(lambda: len(calls) > 20, timeout=5, what="blocks after the sink raised")
        status = source.status()
        assert status["state"] == "running" and "analyser bug" in status["last_error"]
    finally:
        source.close()


def test_jack_going_away_fails_the_input_and_it_comes_back() -> None:
    need_portaudio()
    name = f"perform-test-{os.getpid()}-comes-back"
    blocks: list[np.ndarray] = []
    source = LiveInput(blocks.append, device="system")
    with mock.patch.dict(os.environ, {"JACK_DEFAULT_SERVER": name}):
        try:
            with jack_server(audio=2, period=256, name=name):
                source.start()
                wait_for(lambda: len(blocks) > 10, timeout=5, what="audio")
            gone = time.monotonic()
            wait_for(lambda: source.status()["state"] == "failed", timeout=5, what="a failure")
            assert time.monotonic() - gone < 2.0
            assert "stream stopped" in source.status()["last_error"]
            time.sleep(2.5)  # a try to reopen while there is no server
            assert source.status()["state"] == "failed"
            assert "no audio input matching 'system'" in source.status()["last_error"]
            with jack_server(audio=2, period=256, name=name):
                before = len(blocks)
                wait_for(lambda: source.status()["state"] == "running" and len(blocks) > before,
                         timeout=10, what="the input to come back")
                assert source.sample_rate == 48000
                source.close()  # before the server stops: it should not find a client dead
        except JackUnavailable as exc:
            pytest.skip(f"no JACK server for the audio tests: {exc}")
        finally:
            source.close()
    assert source.status()["state"] == "stopped"


def jackd_pid(name: str) -> int:
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command[0].endswith(b"jackd") and name.encode() in command:
            return int(proc.name)
    raise AssertionError(f"no jackd called {name}")


def test_an_input_that_stalls_fails_and_comes_back() -> None:
    """A driver that hangs without an error (here: jackd stopped by SIGSTOP) is a failure too."""
    need_portaudio()
    blocks: list[np.ndarray] = []
    source = LiveInput(blocks.append, device="system")
    try:
        with jack_server(audio=2, period=256) as name:
            jackd = jackd_pid(name)
            source.start()
            wait_for(lambda: len(blocks) > 10, timeout=5, what="audio")
            os.kill(jackd, signal.SIGSTOP)
            try:
                stalled = time.monotonic()
                wait_for(lambda: source.status()["state"] == "failed", timeout=5, what="a stall")
                assert 0.9 < time.monotonic() - stalled < 2.0
                assert source.status()["last_error"] == "system: no audio for 1 s"
            finally:
                os.kill(jackd, signal.SIGCONT)
            before = len(blocks)
            wait_for(lambda: source.status()["state"] == "running" and len(blocks) > before,
                     timeout=10, what="the input to come back")
            source.close()  # before the server stops: it should not find a client dead
    except JackUnavailable as exc:
        pytest.skip(f"no JACK server for the audio tests: {exc}")
    finally:
        source.close()


def test_a_show_listening_to_the_input_hears_its_note_and_tells_osc(
        tone: str, live_show: Any, tmp_path: Path) -> None:
    """The whole path: sound card (JACK) -> analyser -> ctx.audio and OSC feedback."""
    patch = tmp_path / "show.py"
    patch.write_text("import numpy as np\n\ndef frame(ctx):\n    return np.full((ctx.height, "
                     "ctx.width, 3), ctx.audio.level, np.float32)\n")
    listener = Listener()
    try:
        live = live_show(patch, audio=AudioConfig(device=tone.lower()[:5], channels=(1,)),
                         osc_out=(("127.0.0.1", listener.port),))
        chroma = wait_for(lambda: [c for c in listener.values("/perform/audio/chroma")
                                   if max(c) > 0.9], what="a note")[-1]
        assert chroma.index(max(chroma)) == 9  # A: the tone is 440 Hz
        wait_for(lambda: live.recorder.frames[-1].image.mean() > 100, what="a loud frame")
        audio = live.state()["audio"]
        assert audio["state"] == "running" and audio["sample_rate"] == 48000
    finally:
        listener.close()

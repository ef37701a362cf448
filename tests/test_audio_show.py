"""Audio in a whole show: music videos rendered from a file, a show rehearsing with a file,
and what a performer sees when the audio is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import soundfile
from conftest import Listener, wait_for

from perform.audio.listen import AudioConfig

ROOT = Path(__file__).resolve().parent.parent
RATE, FPS = 48000, 30
CLICKS = [0.5 + 0.5 * i for i in range(8)]  # 120 BPM from half a second in

FLASH = """\
import numpy as np


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), 1.0 if ctx.hit() else 0.0, np.float32)
"""


def click_track(path: Path, seconds: float = 4.6) -> Path:
    """Short bursts of noise on the beat, a quiet hum between them."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * RATE)) / RATE
    signal = 0.01 * np.sin(2 * np.pi * 110 * t)
    for click in CLICKS:
        start = round(click * RATE)
        signal[start:start + 480] += rng.uniform(-0.8, 0.8, 480) * np.linspace(1, 0, 480)
    soundfile.write(path, signal.astype(np.float32), RATE)
    return path


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perform", "render", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_music_video_lasts_as_long_as_its_song_and_flashes_on_the_beat(tmp_path: Path) -> None:
    song = click_track(tmp_path / "song.wav")
    (tmp_path / "flash.py").write_text(FLASH)
    video = tmp_path / "video.mp4"
    done = render(str(tmp_path / "flash.py"), "--audio", str(song), "--out", str(video),
                  "--size", "64x48", "--fps", str(FPS))
    assert done.returncode == 0, done.stderr
    with av.open(str(video)) as container:
        brightness = [f.to_ndarray(format="rgb24").mean() for f in container.decode(video=0)]
    with av.open(str(video)) as container:
        sound = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
        rate = container.streams.audio[0].rate
    assert len(brightness) == round(4.6 * FPS)  # as long as the song
    assert rate == RATE and abs(len(sound) / RATE - 4.6) < 0.05  # and the song is in it
    flashes = [i for i, level in enumerate(brightness) if level > 128]
    # each click lights the first frame drawn after it was heard: frame i hears the audio
    # up to i / fps, and an onset is found up to one analysis hop (10.7 ms) after it sounds
    expected = [int(np.ceil((click + 0.0107) * FPS)) for click in [0.0, *CLICKS]]
    assert len(flashes) == len(expected)  # the hum starting is an onset too
    assert all(f - e in (-1, 0) for f, e in zip(flashes, expected, strict=True)), (flashes,
                                                                                  expected)
    assert np.abs(sound[round(CLICKS[0] * RATE) - 2000:round(CLICKS[0] * RATE) + 2000]).max() > 0.3


def test_render_without_a_length_or_with_an_unreadable_song_says_so(tmp_path: Path) -> None:
    (tmp_path / "flash.py").write_text(FLASH)
    done = render(str(tmp_path / "flash.py"), "--out", str(tmp_path / "v.mp4"))
    assert done.returncode == 2 and "give --seconds (or --audio)" in done.stderr
    (tmp_path / "song.wav").write_bytes(b"RIFF not really")
    done = render(str(tmp_path / "flash.py"), "--audio", str(tmp_path / "song.wav"), "--out",
                  str(tmp_path / "v.mp4"))
    assert done.returncode == 1 and "song.wav" in done.stderr
    assert not (tmp_path / "v.mp4").exists()
    done = render(str(tmp_path / "flash.py"), "--audio", str(click_track(tmp_path / "s.wav")),
                  "--out", str(tmp_path / "frames"))
    assert done.returncode == 1 and "a music video needs a video file" in done.stderr


def test_a_show_rehearsing_with_a_file_hears_it_in_step_with_its_frames(
        tmp_path: Path, live_show) -> None:
    song = click_track(tmp_path / "song.wav")
    (tmp_path / "flash.py").write_text(FLASH)
    listener = Listener()
    try:
        live = live_show(tmp_path / "flash.py", audio=AudioConfig(file=song),
                         osc_out=(("127.0.0.1", listener.port),))
        wait_for(lambda: len(listener.values("/perform/audio/hit")) >= 3, what="three hits")
        flashes = [f for f in live.recorder.frames if f.image.mean() > 128]
        assert flashes and all(f.audio is not None for f in flashes)
        # each flash comes within a frame and a hop of a click in the song's own time
        assert all(min(abs(f.t - c) for c in [0.0, *CLICKS]) < 1 / 30 + 0.011 + 0.005
                   for f in flashes)
        state = live.state()["audio"]
        assert state["source"] == "file" and state["state"] == "running"
        assert state["sample_rate"] == RATE
    finally:
        listener.close()


def test_a_missing_input_leaves_the_music_at_rest_and_says_why(tmp_path: Path,
                                                               live_show) -> None:
    (tmp_path / "flash.py").write_text(FLASH)
    live = live_show(tmp_path / "flash.py", audio=AudioConfig(file=tmp_path / "nothing.wav"))
    frames = wait_for(lambda: len(live.recorder.frames) > 5 and live.recorder.frames)
    assert all(f.image.max() == 0 for f in frames)  # at rest: no hits
    state = live.state()["audio"]
    assert state["state"] == "off" and "nothing.wav" in state["last_error"]

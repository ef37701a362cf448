"""Offline recording: H.264 video and PNG folders, checked by decoding them back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from perform.outputs import recording
from perform.outputs.recording import (
    FrameWriter,
    PngFolderWriter,
    VideoWriter,
    open_writer,
)

W, H = 64, 48


def gradient_frames(n: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """A smooth diagonal gradient that slides a few pixels per frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        r = (x * 3 + i * 4) % 256
        g = (y * 4 + i * 2) % 256
        b = np.full_like(x, (i * 9) % 256)
        frames.append(np.stack([r, g, b], axis=-1).astype(np.uint8))
    return frames


def record(path: Path, frames: list[np.ndarray], fps: float = 12) -> FrameWriter:
    h, w = frames[0].shape[:2]
    with open_writer(path, fps=fps, width=w, height=h) as writer:
        for frame in frames:
            writer.write(frame)
    return writer


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return images, float(rate)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_video_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = gradient_frames(24)
    path = tmp_path / f"clip{suffix}"
    writer = record(path, frames)
    assert isinstance(writer, VideoWriter)
    assert writer.frames_written == 24 and writer.path == path
    images, rate = decode(path)
    assert len(images) == 24
    assert images[0].shape == (H, W, 3)
    assert rate == pytest.approx(12)
    for src, got in zip(frames, images, strict=True):
        assert np.abs(src.astype(int) - got.astype(int)).mean() < 6
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


# Loads recording.py by path so the child skips `import perform` (and torch) and starts fast.
RECORD_SCRIPT = """
import importlib.util, sys
from pathlib import Path
import numpy as np
spec = importlib.util.spec_from_file_location("recording", sys.argv[1])
recording = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recording)
frames = np.load(sys.argv[2])
h, w = frames.shape[1:3]
with recording.open_writer(Path(sys.argv[3]), fps=12, width=w, height=h) as writer:
    for frame in frames:
        writer.write(frame)
"""


def record_in_subprocess(frames: Path, out: Path, perturb: int) -> bytes:
    """Record in a fresh process whose malloc hands out memory filled with a given byte."""
    env = {**os.environ, "MALLOC_PERTURB_": str(perturb)}  # glibc; ignored elsewhere
    args = [sys.executable, "-c", RECORD_SCRIPT, recording.__file__, str(frames), str(out)]
    subprocess.run(args, env=env, check=True, timeout=30)
    return out.read_bytes()


def test_video_is_byte_identical(tmp_path: Path) -> None:
    frames = gradient_frames(24)
    record(tmp_path / "a.mp4", frames)
    record(tmp_path / "b.mp4", frames)
    a = (tmp_path / "a.mp4").read_bytes()
    assert a == (tmp_path / "b.mp4").read_bytes()
    # x264 stores its settings in the stream: one thread, so no dependence on core count.
    assert b" threads=1 " in a and b"lookahead_threads=1" in a and b"crf=18.0" in a


@pytest.mark.parametrize(
    ("width", "height", "mbtree"), [(W, H, b"mbtree=0"), (128, 64, b"mbtree=1")]
)
def test_video_does_not_depend_on_leftover_memory(
    tmp_path: Path, width: int, height: int, mbtree: bytes
) -> None:
    # x264's AVX-512 mbtree code made these bytes follow the heap's old contents at width 64.
    frames = gradient_frames(24, width, height)
    npy = tmp_path / "frames.npy"
    np.save(npy, np.stack(frames))
    outputs = {record_in_subprocess(npy, tmp_path / f"p{n}.mp4", n) for n in (1, 170)}
    outputs.add(record(tmp_path / "here.mp4", frames).path.read_bytes())
    assert len(outputs) == 1
    assert mbtree in outputs.pop()


def test_fractional_fps(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    record(path, gradient_frames(30), fps=29.97)
    images, rate = decode(path)
    assert len(images) == 30
    assert rate == pytest.approx(29.97, abs=1e-3)


def test_png_folder(tmp_path: Path) -> None:
    frames = gradient_frames(5)
    out = tmp_path / "nested" / "stills"
    writer = record(out, frames)
    assert isinstance(writer, PngFolderWriter)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(5)]
    for src, name in zip(frames, names, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), src)


def test_existing_directory_with_dot_is_png_folder(tmp_path: Path) -> None:
    out = tmp_path / "takes.v2"
    out.mkdir()
    assert isinstance(record(out, gradient_frames(1)), PngFolderWriter)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((H, W, 3), np.float32), "dtype must be uint8"),
        (np.zeros((W, H, 3), np.uint8), "does not match"),
        (np.zeros((H, W), np.uint8), "does not match"),
        (np.zeros((H, W, 4), np.uint8), "does not match"),
        ([[0]], "numpy array"),
    ],
)
def test_bad_frames_rejected(tmp_path: Path, bad: object, message: str) -> None:
    with open_writer(tmp_path / "x", fps=12, width=W, height=H) as writer:
        with pytest.raises(ValueError, match=message):
            writer.write(bad)  # type: ignore[arg-type]
        assert writer.frames_written == 0


@pytest.mark.parametrize("name", ["clip.avi", "clip.gif", "clip.webm"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"\.mp4, \.mov, \.mkv"):
        open_writer(tmp_path / name, fps=12, width=W, height=H)


def test_odd_size_rejected_for_video(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        open_writer(tmp_path / "odd.mp4", fps=12, width=65, height=48)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["broken.mp4", "stills"])
def test_error_inside_with_leaves_nothing(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(RuntimeError), open_writer(path, fps=12, width=W, height=H) as writer:
        for frame in gradient_frames(10):
            writer.write(frame)
        raise RuntimeError("patch crashed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_abort_keeps_files_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    writer = record(tmp_path / "clip.mp4", gradient_frames(3))  # an earlier, finished render
    with open_writer(tmp_path, fps=12, width=W, height=H) as stills:
        stills.write(gradient_frames(1)[0])
        stills.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "notes.txt"]
    assert writer.path.stat().st_size > 0


def test_write_after_close_and_double_close(tmp_path: Path) -> None:
    writer = record(tmp_path / "c.mp4", gradient_frames(2))
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(gradient_frames(1)[0])


def test_bad_fps(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        open_writer(tmp_path / "f.mp4", fps=0, width=W, height=H)

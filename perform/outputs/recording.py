"""Frame writers: H.264 or HEVC video (.mp4/.mov/.mkv) or a folder of PNGs.

`perform render` writes deterministic files; `--output record` (see recorder.py) writes the
show as it runs. Nothing half-written ever sits under a final name: files are written to a
hidden temporary name beside the target and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
SUPPORTED = ", ".join(VIDEO_SUFFIXES) + ", or a folder (no suffix) for PNG stills"


class FrameWriter:
    """Base for frame sinks: checks every image, counts frames, works as a context manager."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.path, self.width, self.height = Path(path), width, height
        self.frames_written, self.closed = 0, False

    def write(self, image: np.ndarray, at: float | None = None) -> None:
        """Append one (height, width, 3) uint8 RGB frame; `at`: its time in seconds from
        the start, where the writer keeps time (live video), else frame n is at n / fps."""
        if self.closed:
            raise ValueError(f"cannot write to {self.path}: the writer is closed")
        if not isinstance(image, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(image).__name__}")
        want = (self.height, self.width, 3)
        if image.shape != want:
            raise ValueError(f"frame shape {image.shape} does not match {want} (height, width, 3)")
        if image.dtype != np.uint8:
            raise ValueError(f"frame dtype must be uint8, got {image.dtype}")
        self._write(np.ascontiguousarray(image), at)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the output and put it under its final name; safe to call twice."""
        if not self.closed:
            self.closed = True
            self._finish()

    def abort(self) -> None:
        """Stop without publishing anything incomplete (used when the `with` body raised)."""
        if not self.closed:
            self.closed = True
            self._discard()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        (self.close if exc_type is None else self.abort)()

    def _write(self, image: np.ndarray, at: float | None) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _discard(self) -> None:
        pass


def x264_options(width: int) -> dict[str, str]:
    """crf 18 / preset medium, with mbtree only where it is deterministic.

    x264's AVX-512 mbtree code reads leftover memory when a row is not a multiple of 8
    macroblocks (width not a multiple of 128, e.g. 854x480): the file then changes from run
    to run. Other widths keep mbtree (3x smaller files on a noisy 512x512 test clip).
    """
    mbtree = math.ceil(width / 16) % 8 == 0
    return {"crf": "18", "preset": "medium", "x264-params": f"mbtree={int(mbtree)}"}


CODECS = {"h264": "libx264", "hevc": "libx265"}
LIVE_TIME_BASE = Fraction(1, 90_000)  # the usual video clock: 1/90000 s


class VideoWriter(FrameWriter):
    """H.264 or HEVC (yuv420p) in an mp4/mov/mkv container.

    Offline: frame n at n / fps, one encoder thread (x264's output otherwise depends on the
    number of cores), so the same frames give the same bytes. `live`: each frame at the time
    `write` is given, so the file plays at the pace the show really ran, dropped frames and
    all; a fast preset, a key frame every second, and fragmented mp4/mov, so a recording cut
    short (power, a full disk) still plays up to its last second.
    """

    def __init__(self, path: Path, *, fps: float, width: int, height: int,
                 codec: str = "h264", live: bool = False, crf: int = 18,
                 audio_rate: int | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(
                f"H.264 (yuv420p) needs an even width and height, got {width}x{height}; "
                "choose an even --size or write a PNG folder instead"
            )
        if codec not in CODECS:
            raise ValueError(f"codec is one of {', '.join(CODECS)}, got {codec!r}")
        super().__init__(path, width, height)
        self.live = live
        # Fraction keeps 29.97 exact as 2997/100 instead of a float approximation.
        rate = Fraction(fps).limit_denominator(10_000)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fragmented = live and self.path.suffix.lower() in (".mp4", ".mov")
        self._container = av.open(str(self.partial), mode="w", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof"} if fragmented else {})
        if live:
            options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency",
                       "g": str(max(1, round(fps)))}
        else:
            options = {**x264_options(width), "crf": str(crf)}
        if codec == "hevc":
            options["x265-params"] = "log-level=error"
        try:
            stream = self._container.add_stream(CODECS[codec], rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            self._time_base = LIVE_TIME_BASE if live else 1 / rate
            stream.codec_context.time_base = self._time_base
            if not live:
                stream.codec_context.thread_count = 1
        except BaseException:
            self._discard()
            raise
        self._stream = stream
        self._last_pts = -1
        self._audio = None
        if audio_rate:  # a sound track (a music video): mono AAC, see `write_audio`
            try:
                self._audio = self._container.add_stream("aac", rate=audio_rate, layout="mono")
            except BaseException:
                self._discard()
                raise
        self.audio_written = 0  # samples

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono samples (-1..1) to the sound track, which runs on from 0 without gaps:
        give it the audio that belongs with each frame as the frames are written."""
        if self._audio is None:
            raise ValueError(f"{self.path.name} was opened without a sound track")
        if not len(samples):
            return
        block = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate = self._audio.rate
        frame.pts, frame.time_base = self.audio_written, Fraction(1, self._audio.rate)
        self.audio_written += block.shape[1]
        self._container.mux(self._audio.encode(frame))

    def _write(self, image: np.ndarray, at: float | None) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if self.live and at is not None:
            pts = max(round(at / self._time_base), self._last_pts + 1)  # strictly increasing
        else:
            pts = self.frames_written
        frame.pts, frame.time_base, self._last_pts = pts, self._time_base, pts
        self._container.mux(self._stream.encode(frame))

    def _finish(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))  # flush delayed frames
            if self._audio is not None:
                self._container.mux(self._audio.encode(None))
            self._container.close()
        except BaseException:
            if not self.live:  # a live recording keeps what it has: it plays up to there
                self._discard()
            raise
        os.replace(self.partial, self.path)

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is thrown away; close errors don't matter
            self._container.close()
        self.partial.unlink(missing_ok=True)


class PngFolderWriter(FrameWriter):
    """A folder of lossless stills frame_000000.png, frame_000001.png, ... in order.

    On abort the stills written so far are removed again (and the folder, if this made it).
    """

    def __init__(self, path: Path, *, width: int, height: int) -> None:
        super().__init__(path, width, height)
        self._made_folder = not self.path.is_dir()
        self.path.mkdir(parents=True, exist_ok=True)

    def _write(self, image: np.ndarray, at: float | None) -> None:
        save_png(image, self.path / f"frame_{self.frames_written:06d}.png")

    def _discard(self) -> None:
        for index in range(self.frames_written):
            (self.path / f"frame_{index:06d}.png").unlink(missing_ok=True)
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: someone else put files there
                self.path.rmdir()


def save_png(image: np.ndarray, path: Path) -> None:
    """A lossless still, under its final name only once complete."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def open_writer(path: Path, *, fps: float, width: int, height: int,
                audio_rate: int | None = None) -> FrameWriter:
    """Pick a writer from the path: video for .mp4/.mov/.mkv (with a sound track at
    `audio_rate`, if given), else a PNG folder."""
    path = Path(path)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoWriter(path, fps=fps, width=width, height=height, audio_rate=audio_rate)
    if audio_rate:
        raise ValueError(f"a music video needs a video file ({', '.join(VIDEO_SUFFIXES)}), "
                         f"not {path.name!r}")
    if suffix and not path.is_dir():
        raise ValueError(f"unsupported output {path.name!r}: use {SUPPORTED}")
    return PngFolderWriter(path, width=width, height=height)

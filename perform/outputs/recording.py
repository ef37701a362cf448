"""Frame writers for `perform render`: H.264 video (.mp4/.mov/.mkv) or a folder of PNGs.

Output is deterministic, and nothing half-written ever sits under a final name: files are
written to a hidden temporary name beside the target and renamed into place when complete.
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

    def write(self, image: np.ndarray) -> None:
        """Append one (height, width, 3) uint8 RGB frame."""
        if self.closed:
            raise ValueError(f"cannot write to {self.path}: the writer is closed")
        if not isinstance(image, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(image).__name__}")
        want = (self.height, self.width, 3)
        if image.shape != want:
            raise ValueError(f"frame shape {image.shape} does not match {want} (height, width, 3)")
        if image.dtype != np.uint8:
            raise ValueError(f"frame dtype must be uint8, got {image.dtype}")
        self._write(np.ascontiguousarray(image))
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

    def _write(self, image: np.ndarray) -> None:
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


class VideoWriter(FrameWriter):
    """H.264 (libx264, yuv420p) in an mp4/mov/mkv container; same frames give the same bytes.

    One encoder thread: x264's output otherwise depends on how many cores the machine has.
    """

    def __init__(self, path: Path, *, fps: float, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise ValueError(
                f"H.264 (yuv420p) needs an even width and height, got {width}x{height}; "
                "choose an even --size or write a PNG folder instead"
            )
        super().__init__(path, width, height)
        # Fraction keeps 29.97 exact as 2997/100 instead of a float approximation.
        rate = Fraction(fps).limit_denominator(10_000)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w")
        try:
            stream = self._container.add_stream("libx264", rate=rate, options=x264_options(width))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.codec_context.thread_count = 1
        except BaseException:
            self._discard()
            raise
        self._stream = stream
        self._time_base = 1 / rate

    def _write(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = self.frames_written, self._time_base
        self._container.mux(self._stream.encode(frame))

    def _finish(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))  # flush delayed frames
            self._container.close()
        except BaseException:
            self._discard()
            raise
        os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is thrown away; close errors don't matter
            self._container.close()
        self._tmp.unlink(missing_ok=True)


class PngFolderWriter(FrameWriter):
    """A folder of lossless stills frame_000000.png, frame_000001.png, ... in order.

    On abort the stills written so far are removed again (and the folder, if this made it).
    """

    def __init__(self, path: Path, *, width: int, height: int) -> None:
        super().__init__(path, width, height)
        self._made_folder = not self.path.is_dir()
        self.path.mkdir(parents=True, exist_ok=True)

    def _write(self, image: np.ndarray) -> None:
        final = self.path / f"frame_{self.frames_written:06d}.png"
        tmp = final.with_name(f".{final.name}.partial")
        try:
            Image.fromarray(image).save(tmp, format="PNG")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, final)

    def _discard(self) -> None:
        for index in range(self.frames_written):
            (self.path / f"frame_{index:06d}.png").unlink(missing_ok=True)
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: someone else put files there
                self.path.rmdir()


def open_writer(path: Path, *, fps: float, width: int, height: int) -> FrameWriter:
    """Pick a writer from the path: video for .mp4/.mov/.mkv, else a PNG folder."""
    path = Path(path)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoWriter(path, fps=fps, width=width, height=height)
    if suffix and not path.is_dir():
        raise ValueError(f"unsupported output {path.name!r}: use {SUPPORTED}")
    return PngFolderWriter(path, width=width, height=height)

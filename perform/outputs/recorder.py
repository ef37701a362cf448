"""Recording the show as it plays: `--output record:path=show.mp4`.

Frames are encoded on the output's own thread, each stamped with the time it was drawn, so
the file keeps the show's real pace (a frame the encoder had no time for is a longer frame
in the file, never a faster show). A recording that fails (a full disk) stops with a
message and keeps what it has, playable; it is not started again on its own, since a new
file mid-show is a surprise nobody wants.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from perform.core.frames import Frame
from perform.outputs.base import Output, OutputError, OutputSpec
from perform.outputs.recording import CODECS, VIDEO_SUFFIXES, VideoWriter


class Recorder(Output):
    kind = "record"
    takes: ClassVar[dict[str, str]] = {
        "path": "the video file (.mp4, .mov, .mkv); default perform-DATE-TIME.mp4 here",
        "codec": f"{' or '.join(CODECS)} (default h264)",
        "crf": "quality, lower is better and bigger (default 18)"}
    retries = False

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        super().__init__(spec, width, height, fps)
        default = Path(time.strftime("perform-%Y%m%d-%H%M%S.mp4"))
        self.path = self.option("path", default, Path).expanduser().resolve()
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"--output record: path {self.path.name!r} should end in "
                             + ", ".join(VIDEO_SUFFIXES))
        self.codec = self.option("codec", "h264")
        self.crf = self.option("crf", 18, int)
        if self.width % 2 or self.height % 2:
            raise ValueError(f"--output record: video needs an even width and height, got "
                             f"{self.width}x{self.height}; add size=WxH")
        self._writer: VideoWriter | None = None
        self._start = 0.0

    def open(self) -> None:
        try:
            self._writer = VideoWriter(self.path, fps=self.max_fps or self.show_fps,
                                       width=self.width, height=self.height, codec=self.codec,
                                       live=True, crf=self.crf)
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot record to {self.path}: {exc}") from exc

    def send(self, frame: Frame, image: np.ndarray) -> None:
        assert self._writer is not None
        if self._writer.frames_written == 0:
            self._start = frame.t
        try:
            self._writer.write(image, at=frame.t - self._start)
        except OSError as exc:  # a full disk, a vanished drive
            raise OutputError(f"recording stopped: {exc.strerror or exc}") from exc

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:
            raise OutputError(f"recording stopped: {exc}; {writer.frames_written} frames kept "
                              f"in {writer.partial}") from exc

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path)}

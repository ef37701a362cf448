"""NDI: `--output ndi[:name=perform,alpha=luma]`, the show as a video source on the network.

NDI is how VJ machines pass video to each other: Resolume, TouchDesigner, OBS and vMix list
the show among their sources by name, on this machine or another. `alpha=luma` makes black
transparent (alpha follows each pixel's brightness), so the show can be layered over other
video without a keyer. Built on cyndilib, which bundles the NDI library.

We pace frames ourselves (the render, and the runner's `fps=`), so NDI's own clock is off:
a frame goes out when it is sent, and sending never waits for the next frame time.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from perform.core.frames import Frame
from perform.outputs.base import Output, OutputError, OutputSpec, OutputUnavailable, choice

ALPHAS = ("opaque", "luma")


def exact_rate(fps: float) -> Fraction:
    """The frame rate as NDI wants it, a fraction: 30 is 30/1, 29.97 the NTSC 30000/1001
    that receivers expect (not 2997/100), and anything else the nearest x/1001 or simpler."""
    for step in (Fraction(1), Fraction(1000, 1001)):
        whole = round(fps / step)
        if whole > 0 and abs(fps - whole * step) < 1e-3:
            return whole * step
    return Fraction(fps).limit_denominator(1001)


class NdiOutput(Output):
    kind = "ndi"
    takes: ClassVar[dict[str, str]] = {
        "name": "the NDI source name receivers list, after this machine's (default perform)",
        "alpha": "opaque (default) | luma: alpha follows brightness, so black is transparent"}

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        super().__init__(spec, width, height, fps)
        self.ndi_name: str = self.option("name", "perform")
        self.alpha: str = self.option("alpha", "opaque", choice(ALPHAS))
        self.rate = exact_rate(self.max_fps or self.show_fps)
        self._sender: Any = None  # cyndilib.Sender while open
        self._rgba: np.ndarray | None = None  # the one buffer every frame is converted into
        self._full_name = self.ndi_name  # "HOST (name)" as receivers list it, once open
        self._lock = threading.Lock()  # `describe` asks the sender from the state API's thread

    def open(self) -> None:
        try:
            import cyndilib
        except ImportError as exc:
            raise OutputUnavailable("NDI needs cyndilib: pip install 'perform[ndi]'") from exc
        frame = cyndilib.VideoSendFrame()
        frame.set_resolution(self.width, self.height)
        # RGBX tells NDI there is no alpha to encode; RGBA carries ours
        frame.set_fourcc(cyndilib.FourCC.RGBA if self.alpha == "luma" else cyndilib.FourCC.RGBX)
        frame.set_frame_rate(self.rate)
        sender = cyndilib.Sender(self.ndi_name, clock_video=False, clock_audio=False)
        sender.set_video_frame(frame)
        # Never used, but without one cyndilib 0.1.3 crashes the process (not raises) when
        # NDI refuses the sender, as it does when the name is taken on this machine.
        sender.set_audio_frame(cyndilib.AudioSendFrame())
        try:
            sender.open()
        except Exception as exc:  # tried again in a few seconds: the other may have gone
            raise OutputError(f"NDI did not make source {self.ndi_name!r}; is another "
                              "sender on this machine using the name?") from exc
        self._rgba = np.full((self.height, self.width, 4), 255, np.uint8)
        with self._lock:
            self._sender, self._full_name = sender, sender.name

    def send(self, frame: Frame, image: np.ndarray) -> None:
        rgba = self._rgba
        assert rgba is not None and self._sender is not None
        np.copyto(rgba[..., :3], image)
        if self.alpha == "luma":  # brightness as in HSB, max(R, G, B): a pure red stays solid
            alpha = rgba[..., 3]
            np.maximum(image[..., 0], image[..., 1], out=alpha)
            np.maximum(alpha, image[..., 2], out=alpha)
        # cyndilib copies the frame into its own buffer, so ours is free again at once. It
        # takes flat uint8 of exactly width * height * 4 (another length leaves the sender
        # refusing every later frame, until the runner opens a new one)
        if not self._sender.write_video(rgba.reshape(-1)):
            raise OutputError(f"NDI source {self._full_name!r} is not running")

    def close(self) -> None:
        with self._lock:
            sender, self._sender, self._rgba = self._sender, None, None
        if sender is not None:
            sender.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            if self._sender is None:
                return {"ndi_name": self._full_name}
            return {"ndi_name": self._full_name,
                    "receivers": self._sender.get_num_connections(0.0)}


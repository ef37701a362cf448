"""Spout: `--output spout[:name=perform]`, the show as a GPU texture for other Windows programs.

Resolume, TouchDesigner, MadMapper and most Windows VJ software list Spout senders as
sources, with no copy through a network or a webcam driver. Spout is Windows-only; on
Linux and macOS `open` says so once and names what to use there (ndi, virtualcam, syphon).

UNTESTED ON WINDOWS: the Windows path is written from the documentation and source of the
SpoutGL package (Python-SpoutGL, a pybind11 binding of Spout 2.007's `SpoutSender`) and has
never run; perform is developed on Linux, where SpoutGL does not even install.

OpenGL context: Spout shares through OpenGL/DirectX interop, so `sendImage` needs an OpenGL
context current on the calling thread. We do not open a hidden pyglet or glfw window for
that: we ask Spout itself, `SpoutSender.createOpenGL()`, which makes an invisible 32x32
window with a context and makes it current on the calling thread (it returns at once if
the thread has one already). `open`, `send` and `close` all run on the output's own
thread, so that context stays ours and never meets the window's pyglet context on the
main thread; `close` gives it back with `closeOpenGL()`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from perform.core.frames import Frame
from perform.outputs.base import (
    Output,
    OutputError,
    OutputSpec,
    OutputUnavailable,
    require_os,
)


class SpoutOutput(Output):
    kind = "spout"
    takes: ClassVar[dict[str, str]] = {"name": "the sender name receivers list (default perform)"}

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        super().__init__(spec, width, height, fps)
        self.sender_name: str = self.option("name", "perform")
        self._sender: Any = None  # SpoutGL.SpoutSender once open
        self._rgb = 0  # SpoutGL.enums.GL_RGB: our frames are packed RGB, top row first

    def open(self) -> None:
        require_os(self.kind, "win32")
        try:
            import SpoutGL
            from SpoutGL.enums import GL_RGB
        except ImportError as exc:
            raise OutputUnavailable("spout needs the SpoutGL package: pip install SpoutGL"
                                    ) from exc
        sender = SpoutGL.SpoutSender()
        if not sender.createOpenGL():  # a context on this thread, see the module docstring
            raise OutputError("spout: could not make an OpenGL context (graphics driver?)")
        sender.setSenderName(self.sender_name)
        self._sender, self._rgb = sender, GL_RGB

    def send(self, frame: Frame, image: np.ndarray) -> None:
        sender = self._sender
        # Arguments are (pixels, width, height, format, invert, host FBO); no invert since
        # numpy rows and DirectX textures both start at the top.
        if not sender.sendImage(np.ascontiguousarray(image), self.width, self.height,
                                self._rgb, False, 0):
            raise OutputError(f"spout sender {self.sender_name!r} did not take the frame")
        sender.setFrameSync(self.sender_name)  # wakes receivers that wait for new frames

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.releaseSender()
            sender.closeOpenGL()

    def describe(self) -> dict[str, Any]:
        return {"name": self.sender_name}

"""Syphon: `--output syphon[:name=perform]`, the show as a GPU texture for other Mac programs.

Resolume, MadMapper, VDMX, Millumin and most macOS VJ software list Syphon servers as
sources, with no copy through a network or a webcam driver. Syphon is macOS-only; on
Linux and Windows `open` says so once and names what to use there (ndi, virtualcam, spout).

UNTESTED ON MACOS: the macOS path is written from the documentation and source of the
syphon-python package (PyObjC over the Syphon framework) and has never run; perform is
developed on Linux, where syphon-python refuses to install.

Metal device: we use Syphon's Metal server, not its deprecated OpenGL one, so no OpenGL
context is needed at all. The device is `Metal.MTLCreateSystemDefaultDevice()` (the GPU
macOS drives the displays with; PyObjC's Metal module comes with syphon-python), asked
for explicitly so that a Mac without Metal gets a clear message. `SyphonMetalServer` makes
its own command queue on it; each frame is widened to RGBA in a buffer kept between
frames, copied into one RGBA8 texture with syphon-python's numpy helper and published.
Not known until tried on a Mac: whether the picture needs `is_flipped=True`, and whether
Syphon clients started after the server find it while no window runs the main thread's
Cocoa run loop (syphon-python's docs ask headless servers to pump it).
"""

from __future__ import annotations

from collections.abc import Callable
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


class SyphonOutput(Output):
    kind = "syphon"
    takes: ClassVar[dict[str, str]] = {"name": "the server name clients list (default perform)"}

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        super().__init__(spec, width, height, fps)
        self.server_name: str = self.option("name", "perform")
        self._server: Any = None  # syphon.SyphonMetalServer once open
        self._texture: Any = None  # its MTLTexture, RGBA8, at the output's size
        self._copy: Callable[[np.ndarray, Any], None] | None = None
        self._rgba = np.empty((0, 0, 4), np.uint8)

    def open(self) -> None:
        require_os(self.kind, "darwin")
        try:
            import Metal
            import syphon
            from syphon.utils.numpy import copy_image_to_mtl_texture
            from syphon.utils.raw import create_mtl_texture
        except ImportError as exc:
            raise OutputUnavailable("syphon needs the syphon-python package: "
                                    "pip install syphon-python") from exc
        device = Metal.MTLCreateSystemDefaultDevice()
        if device is None:
            raise OutputUnavailable("syphon: this Mac has no Metal GPU; use --output ndi")
        server = syphon.SyphonMetalServer(self.server_name, device=device)
        texture = create_mtl_texture(server.device, self.width, self.height)
        if texture is None:
            server.stop()
            raise OutputError(f"syphon: no {self.width}x{self.height} texture on the GPU")
        self._rgba = np.full((self.height, self.width, 4), 255, np.uint8)  # opaque alpha
        self._server, self._texture, self._copy = server, texture, copy_image_to_mtl_texture

    def send(self, frame: Frame, image: np.ndarray) -> None:
        assert self._copy is not None
        self._rgba[..., :3] = image
        self._copy(self._rgba, self._texture)
        self._server.publish_frame_texture(self._texture)

    def close(self) -> None:
        server, self._server, self._texture = self._server, None, None
        if server is not None:
            server.stop()

    def describe(self) -> dict[str, Any]:
        return {"name": self.server_name}

"""A virtual webcam: `--output virtualcam[:device=/dev/video2,backend=NAME]`.

The lowest common denominator: anything that takes a webcam (OBS, a browser, Zoom, VJ
software without Spout/Syphon/NDI) takes the show. Built on pyvirtualcam, which drives
v4l2loopback on Linux and OBS Studio's virtual camera (26+) on Windows and macOS.

A missing camera is common on stage (the module not loaded yet, OBS not started once), so
it is an `OutputError`: the runner tries again every few seconds and a camera loaded
mid-show is picked up without a restart. A missing pyvirtualcam package, or a backend name
that does not exist, is `OutputUnavailable`: said once, never retried.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np

from perform.core.frames import Frame
from perform.outputs.base import Output, OutputError, OutputSpec, OutputUnavailable

LINUX_HINT = ("to make one: sudo apt install v4l2loopback-dkms && "
              "sudo modprobe v4l2loopback exclusive_caps=1 card_label=perform")
OBS_HINT = "to make one: install OBS Studio 26+ and start its virtual camera once"


def camera_hint() -> str:
    """What to do on this OS when there is no virtual camera device, in one line."""
    return LINUX_HINT if sys.platform.startswith("linux") else OBS_HINT


class VirtualCamera(Output):
    kind = "virtualcam"
    takes: ClassVar[dict[str, str]] = {
        "device": "the camera to use, e.g. /dev/video2 (default: the first free one)",
        "backend": "pyvirtualcam backend: v4l2loopback, obs, unitycapture (default: any)"}

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        super().__init__(spec, width, height, fps)
        self.device: str | None = self.option("device", None)
        self.backend: str | None = self.option("backend", None)
        self._camera: Any = None  # pyvirtualcam.Camera once open
        self._device: str | None = None  # kept apart: the state API reads it from its thread

    def open(self) -> None:
        try:
            import pyvirtualcam
            from pyvirtualcam.camera import BACKENDS
        except ImportError as exc:
            raise OutputUnavailable("virtualcam needs the pyvirtualcam package: "
                                    "pip install pyvirtualcam") from exc
        if self.backend is not None and self.backend not in BACKENDS:
            raise OutputUnavailable(f"virtualcam: no pyvirtualcam backend {self.backend!r} "
                                    f"here; there are {', '.join(BACKENDS) or 'none'}")
        if not BACKENDS:
            raise OutputUnavailable(f"virtualcam: pyvirtualcam has no camera backend for "
                                    f"{sys.platform}; use --output ndi")
        fps = self.max_fps or self.show_fps
        try:
            camera = pyvirtualcam.Camera(self.width, self.height, fps,
                                         fmt=pyvirtualcam.PixelFormat.RGB, device=self.device,
                                         backend=self.backend)
        except RuntimeError as exc:  # no device (yet): worth another try in a few seconds
            where = f" at {self.device}" if self.device else ""
            reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise OutputError(f"no virtual camera{where} ({reason}); {camera_hint()}"
                              ) from exc
        self._camera, self._device = camera, camera.device

    def send(self, frame: Frame, image: np.ndarray) -> None:
        # No sleep_until_next_frame: the runner paces us (fps=), the render paces the show.
        try:
            self._camera.send(image)
        except (RuntimeError, OSError) as exc:  # the device went away (module unloaded, OBS)
            raise OutputError(f"virtual camera {self._device} stopped taking frames: {exc}"
                              ) from exc

    def close(self) -> None:
        camera, self._camera, self._device = self._camera, None, None
        if camera is not None:
            camera.close()

    def describe(self) -> dict[str, Any]:
        return {"device": self._device}

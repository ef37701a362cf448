"""What a patch returns, as the frame every output gets: (height, width, 3) uint8 RGB on the host.

On CUDA this is the one moment a frame waits for the GPU. The image is turned into bytes
there (a quarter of the float data to move), copied into page-locked host memory without
blocking, and waited for on an event: the wait lets go of the GIL, so OSC, MIDI and the
web page carry on while the GPU finishes the frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from perform.core.fit import Size, fit_tensor


class FrameShapeError(ValueError):
    pass


class Readback:
    """Turns patch results into frames; keeps one pinned buffer per image shape for CUDA."""

    def __init__(self) -> None:
        self._pinned: dict[tuple[int, ...], tuple[torch.Tensor, torch.cuda.Event]] = {}

    def rgb8(self, image: Any, width: int, height: int) -> np.ndarray:
        """A fresh read-only (height, width, 3) uint8 array from a tensor (any device) or an
        array, in 0..1 unless already uint8."""
        if isinstance(image, torch.Tensor):
            _check_shape(tuple(image.shape), width, height)
            array = self._to_host(_bytes(image))
        elif isinstance(image, np.ndarray):
            _check_shape(image.shape, width, height)
            array = image
            if array.dtype != np.uint8:
                array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            raise FrameShapeError(f"frame(ctx) must return an image, got {type(image).__name__}")
        out = np.array(array, dtype=np.uint8, copy=True, order="C")
        out.flags.writeable = False
        return out

    def scaled(self, image: Any, sizes: Iterable[Size]) -> dict[Size, np.ndarray]:
        """The outputs' other sizes of a GPU image, scaled on the GPU before the readback.
        Nothing for images elsewhere: outputs scale those in their own threads."""
        if not (isinstance(image, torch.Tensor) and image.device.type == "cuda"):
            return {}
        unit = image.detach().float() / 255.0 if image.dtype == torch.uint8 else image.detach()
        found = {}
        for size in sizes:
            array = np.array(self._to_host(_bytes(fit_tensor(unit, *size))), copy=True)
            array.flags.writeable = False
            found[size] = array
        return found

    def _to_host(self, image: torch.Tensor) -> np.ndarray:
        if image.device.type != "cuda":
            return image.cpu().numpy()
        shape = tuple(image.shape)
        if shape not in self._pinned:
            self._pinned[shape] = (torch.empty(shape, dtype=torch.uint8, pin_memory=True),
                                   torch.cuda.Event())
        host, copied = self._pinned[shape]
        host.copy_(image, non_blocking=True)
        copied.record(torch.cuda.current_stream(image.device))
        copied.synchronize()
        return host.numpy()  # copied out by the caller before the buffer is used again


def _bytes(image: torch.Tensor) -> torch.Tensor:
    """An image in 0..1 (or already bytes) as uint8, on its own device."""
    if image.dtype == torch.uint8:
        return image.detach()
    return image.detach().float().clamp(0.0, 1.0).mul(255.0).add(0.5).to(torch.uint8)


def _check_shape(shape: tuple[int, ...], width: int, height: int) -> None:
    if shape != (height, width, 3):
        raise FrameShapeError(f"frame(ctx) returned an image of shape {shape}; "
                              f"the show needs (height, width, 3) = ({height}, {width}, 3)")


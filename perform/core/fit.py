"""A frame at another size: render at 512x512, send 1920x1080 to the projector.

Three ways to fit: "letterbox" keeps the whole picture and fills the rest with black,
"crop" fills the whole output and cuts what sticks out, "stretch" fills it and distorts.
The geometry is one function; frames from the CPU are scaled with Pillow in the output's
own thread, frames from a GPU on the GPU before they are read back (see `Readback`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

FITS = ("letterbox", "crop", "stretch")
Size = tuple[int, int, str]  # width, height, fit


def parse_size(text: str) -> tuple[int, int]:
    """"1920x1080" as (1920, 1080); 8 to 8192 pixels a side."""
    width, sep, height = text.strip().lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()
            and 8 <= int(width) <= 8192 and 8 <= int(height) <= 8192):
        raise ValueError(f"size {text!r} should look like 1920x1080 (8 to 8192)")
    return int(width), int(height)


def placement(src_w: int, src_h: int, dst_w: int, dst_h: int,
              fit: str) -> tuple[int, int, int, int]:
    """(x, y, w, h): where the scaled source lands in the output, in whole pixels; x and y
    are negative when cropping (the source sticks out on both sides)."""
    if fit not in FITS:
        raise ValueError(f"fit is one of {', '.join(FITS)}, got {fit!r}")
    if fit == "stretch":
        return 0, 0, dst_w, dst_h
    pick = min if fit == "letterbox" else max
    scale = pick(dst_w / src_w, dst_h / src_h)
    w, h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    return (dst_w - w) // 2, (dst_h - h) // 2, w, h


def fit_array(image: np.ndarray, width: int, height: int, fit: str) -> np.ndarray:
    """A (height, width, 3) uint8 frame scaled to the output (the same array if it fits)."""
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image
    x, y, w, h = placement(src_w, src_h, width, height, fit)
    scaled = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR,
                                                      reducing_gap=3.0))
    out = np.zeros((height, width, image.shape[2]), np.uint8)
    _paste(out, scaled, x, y)
    return out


def fit_tensor(image: torch.Tensor, width: int, height: int, fit: str) -> torch.Tensor:
    """The same for a (height, width, 3) tensor in 0..1, on its own device."""
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image
    x, y, w, h = placement(src_w, src_h, width, height, fit)
    scaled = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(h, w), mode="bilinear",
                           align_corners=False, antialias=True)[0].permute(1, 2, 0)
    out = image.new_zeros((height, width, image.shape[2]), dtype=scaled.dtype)
    _paste(out, scaled, x, y)
    return out


def _paste(out: np.ndarray | torch.Tensor, image: np.ndarray | torch.Tensor,
           x: int, y: int) -> None:
    """Copy `image` into `out` at (x, y), dropping whatever falls outside."""
    height, width = out.shape[:2]
    h, w = image.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + h, height), min(x + w, width)
    out[top:bottom, left:right] = image[top - y:bottom - y, left - x:right - x]

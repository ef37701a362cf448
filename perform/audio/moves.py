"""The moves audio-reactive pieces are made of, a line each in a patch:

    from perform import audio

    psi = 0.6 + 0.3 * audio.pulse(ctx, "low")             # kicks punch the truncation
    ws = audio.push(ctx, ws, hit_ws, "low", layers=range(4))  # and the coarse layers
    z = audio.chroma_blend(ctx.audio.chroma, palette)      # the chords pick the colours
    z = walks.noise_loop(audio.travel(ctx, 0.02, 0.2), dim=512)  # louder moves faster

Latents may be numpy arrays or torch tensors. State between frames lives in `ctx.state`,
so a save of the patch keeps every envelope where it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # perform.patch needs this package first
    from perform.patch import Ctx


def pulse(ctx: Ctx, band: str | None = None, decay: float = 0.3) -> float:
    """1 on the frame after an onset (in `band`, or anywhere), falling away to nothing over
    about `decay` seconds: a flash, a kick on the truncation, a push. Asking twice in one
    frame gives the same value."""
    key = f"audio.pulse:{band}:{decay}"
    frame, value = ctx.state.get(key, (None, 0.0))
    if frame != ctx.frame:
        value = 1.0 if ctx.hit(band) else value * math.exp(-ctx.dt / max(decay, 1e-3))
        ctx.state[key] = (ctx.frame, value)
    return value


def push(ctx: Ctx, latent: Any, toward: Any, band: str | None = None, amount: float = 1.0,
         decay: float = 0.3, layers: Iterable[int] | None = None) -> Any:
    """`latent` moved toward `toward` on each onset, `amount` of the way, easing back over
    `decay` seconds. For a W+ latent (one row per layer) `layers` limits the push to those
    rows: `range(4)` moves the coarse layers (pose, layout), `range(8, 18)` the fine ones."""
    share = amount * pulse(ctx, band, decay)
    if layers is None:
        return latent + (toward - latent) * share
    rows = list(layers)
    moved = latent.clone() if isinstance(latent, torch.Tensor) else np.array(latent, copy=True)
    moved[rows] = latent[rows] + (toward[rows] - latent[rows]) * share
    return moved


def chroma_blend(chroma: Sequence[float], palette: Sequence[Any],
                 average: bool = False) -> Any:
    """A latent for the harmony now: the 12 `palette` latents (one per pitch class, C to B)
    weighted by the chroma; silence gives the first one. The weights are divided by their
    root sum of squares, so a blend of z latents (independent Gaussians) keeps their
    spread; `average=True` divides by their sum instead, for w latents."""
    if len(palette) != 12:
        raise ValueError(f"a chroma palette has 12 latents, C to B; got {len(palette)}")
    weights = [float(w) for w in chroma]
    norm = sum(weights) if average else math.sqrt(sum(w * w for w in weights))
    if norm == 0.0:
        return palette[0]
    blend = palette[0] * (weights[0] / norm)
    for weight, latent in zip(weights[1:], palette[1:], strict=True):
        blend = blend + latent * (weight / norm)
    return blend


def travel(ctx: Ctx, base: float, follow: float, name: str = "audio.travel") -> float:
    """A walk position that moves `base` units a second, plus `follow` more at full
    loudness: the walk speeds up with the music and never jumps (see `ctx.phase`)."""
    return ctx.phase(base + follow * ctx.audio.level, name)

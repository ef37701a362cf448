"""Latent directions found in a generator's own weights, with no sampling and no training:
closed-form factorisation of the style affines (SeFa: Shen & Zhou 2021, "Closed-Form
Factorization of Latent Semantics in GANs", arXiv 2007.06600).

Every modulated layer turns its w into styles with an affine map, s = A w + b. Moving w by
`a * n` moves the styles by `a * A n`, whatever w was, so the directions that move the
chosen layers' styles the most are the unit vectors n that maximise ||A n||^2 = n^T A^T A n:
the eigenvectors of A^T A with the largest eigenvalues, A being the affines of those layers
stacked row on row. That is a w_dim x w_dim symmetric eigenproblem, which is why a show can
factorise a checkpoint the moment it loads it and hand the performer a bank of directions.

Two choices, both in `factorise`:

- Each row of A (the weights one style channel reads w with) is scaled to unit length before
  stacking, as the authors' implementation does. Trained affines differ in scale from layer
  to layer and channel to channel; without this a handful of large rows would pick every
  direction, and the eigenvalue would measure weight magnitude rather than how many
  channels a direction drives.
- The affines' `weight_gain` (and ToRGB's extra gain on its styles) is not applied: both
  scale whole rows, which the normalisation cancels, so applying them would change nothing.

A strength is then the sum over the stacked channels of cos^2(angle between the direction
and the channel's row); the strengths of all w_dim directions add up to the channel count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from perform.models.stylegan.sg2 import FullyConnected, SG2Generator, SynthesisBlock
from perform.models.stylegan.sg3 import SG3Generator

LAYER_GROUPS: dict[str, slice] = {
    "coarse": slice(0, 4),
    "middle": slice(4, 8),
    "fine": slice(8, None),
    "all": slice(0, None),
}
"""Named sets of w indices (layers), as half-open ranges cut from range(num_ws).

The rule, as StyleGAN's style mixing counts: w index i belongs to resolution 4 * 2**(i // 2),
the block whose `conv1` (2i) or `torgb` (2i + 1) reads it; the next block's up-sampling
`conv0` reads the torgb's w as well. So "coarse" is 4x4 to 8x8, indices 0-3; "middle" is
16x16 to 32x32, indices 4-7; "fine" is 64x64 and up, indices 8 to num_ws - 1 (8-17 at
1024px, empty at 32px and below); "all" is every index.
"""


def group_layers(group: str, num_ws: int) -> tuple[int, ...]:
    """The w indices a named group covers in a generator with `num_ws` of them."""
    if group not in LAYER_GROUPS:
        raise ValueError(f"unknown layer group {group!r}: use one of {', '.join(LAYER_GROUPS)}")
    return tuple(range(num_ws))[LAYER_GROUPS[group]]


def _check_layers(layers: Sequence[int], num_ws: int) -> tuple[int, ...]:
    """Sorted, de-duplicated w indices, each 0 <= i < num_ws; at least one."""
    chosen = tuple(sorted({int(i) for i in layers}))
    if not chosen:
        raise ValueError("no layers chosen")
    outside = [i for i in chosen if not 0 <= i < num_ws]
    if outside:
        raise ValueError(f"layers {outside} are out of range: this generator has w indices "
                         f"0 to {num_ws - 1}")
    return chosen


def style_affines(generator: SG2Generator | SG3Generator) -> list[tuple[int, FullyConnected]]:
    """Every (w index, affine) pair, walking the blocks the way the synthesis hands out w:
    conv0 reads the block's first w, conv1 the next, torgb the one after, which is also the
    next block's first (so blocks without RGB leave it to that conv0 alone). A StyleGAN3's
    layer i reads w index i + 1; its input's affine (a rotation and a shift, not a style)
    takes no part."""
    if isinstance(generator, SG3Generator):
        return [(i + 1, getattr(generator.synthesis, spec.name).affine)
                for i, spec in enumerate(generator.config.layers)]
    pairs: list[tuple[int, FullyConnected]] = []
    start = 0
    for resolution in generator.config.resolutions:
        block: SynthesisBlock = getattr(generator.synthesis, f"b{resolution}")
        if block.num_conv == 2:
            pairs.append((start, block.conv0.affine))
        pairs.append((start + block.num_conv - 1, block.conv1.affine))
        if block.has_rgb:
            pairs.append((start + block.num_conv, block.torgb.affine))
        start += block.num_conv
    return pairs


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare by
class Directions:
    """The top-k directions for a set of layers, strongest first.

    vectors: [k, w_dim], orthonormal; each signed so its largest component is positive, so
        the same checkpoint gives the same directions (not their negatives) on every load.
    strengths: [k], the eigenvalues of A^T A, descending.
    layers: the w indices they were computed from, and the ones `apply` moves by default.
    """

    vectors: torch.Tensor
    strengths: torch.Tensor
    layers: tuple[int, ...]

    def apply(self, ws: torch.Tensor, amounts: Sequence[float] | torch.Tensor,
              layers: Sequence[int] | None = None) -> torch.Tensor:
        """ws ([num_ws, w_dim] or [B, num_ws, w_dim]) moved by sum_i amounts[i] * vectors[i]
        on the given layers only (default: the layers the directions came from).

        Returns a new tensor and never modifies ws, so a patch can keep one base w and play
        directions on it frame after frame. Fewer amounts than directions use the first ones.
        """
        if ws.ndim not in (2, 3) or ws.shape[-1] != self.vectors.shape[1]:
            raise ValueError(f"ws must be [num_ws, {self.vectors.shape[1]}] or "
                             f"[B, num_ws, {self.vectors.shape[1]}], got {list(ws.shape)}")
        if not isinstance(amounts, torch.Tensor):  # a copy: params hand over read-only arrays
            amounts = torch.tensor(list(amounts), dtype=ws.dtype)
        amounts = amounts.to(ws.device, ws.dtype)
        if amounts.ndim != 1 or len(amounts) > len(self.vectors):
            raise ValueError(f"amounts must be a list of at most {len(self.vectors)} numbers, "
                             f"got shape {list(amounts.shape)}")
        chosen = _check_layers(self.layers if layers is None else layers, ws.shape[-2])
        offset = amounts @ self.vectors[:len(amounts)].to(ws.device, ws.dtype)
        moved = ws.clone()
        moved[..., list(chosen), :] += offset
        return moved


def factorise(generator: SG2Generator | SG3Generator, layers: Sequence[int] | str = "all",
              k: int = 16) -> Directions:
    """The k directions in w that move the styles of `layers` (w indices, or a group name of
    LAYER_GROUPS) the most, by SeFa: top eigenvectors of A^T A, A the row-normalised stack
    of those layers' affine weights (see the module docstring for why normalised and why
    without the weight gains).

    Solved in float64 on the CPU: the problem is only w_dim x w_dim, and the eigenvectors of
    close eigenvalues are sensitive to rounding. If k exceeds the rank of A, the directions
    past the rank have strength 0 and are some orthonormal completion.
    """
    num_ws, w_dim = generator.config.num_ws, generator.config.w_dim
    if not 1 <= k <= w_dim:
        raise ValueError(f"k must be between 1 and w_dim ({w_dim}), got {k}")
    if isinstance(layers, str):
        chosen = group_layers(layers, num_ws)
        if not chosen:
            raise ValueError(f"layer group {layers!r} is empty at "
                             f"{generator.config.img_resolution}px ({num_ws} w indices)")
    else:
        chosen = _check_layers(layers, num_ws)
    styled = style_affines(generator)
    chosen = tuple(i for i in chosen if any(i == index for index, _ in styled))  # w with styles
    if not chosen:
        raise ValueError(f"no styled layers among {layers!r}")
    rows = [affine.weight.detach().to("cpu", torch.float64)
            for index, affine in styled if index in chosen]
    stacked = torch.cat(rows)
    stacked = stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-12)
    eigenvalues, eigenvectors = torch.linalg.eigh(stacked.T @ stacked)  # ascending
    strengths = eigenvalues.flip(0)[:k]
    vectors = eigenvectors.flip(1)[:, :k].T  # [k, w_dim], rows are the directions
    largest = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    vectors = vectors * largest.sign()
    return Directions(vectors.float(), strengths.float(), chosen)

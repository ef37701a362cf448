"""Weight morphs: two StyleGAN2 generators of one architecture blended tensor by tensor.

The classic piece: a model fine-tuned from another (faces -> paintings, say) keeps its
parent's weights aligned, so a weighted average of the two is itself a working generator
that draws something in between. Blending every layer alike fades one model into the other;
weighting by depth keeps the coarse layers (layout, pose) of one and the fine layers
(texture, colour) of the other, as style mixing does with w, but with the networks.

The blend is written in place into a third generator (a copy of A) with `torch.lerp`, so a
patch holds one generator whose weights move under a fader: no allocation per change, no
new module for a compiled graph to trace, and the same device as the models.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable

import torch

from perform.models.stylegan.sg2 import SG2Config, SG2Generator
from perform.models.stylegan.sg3 import SG3Config, SG3Generator

MAX_LISTED = 8  # differences named in one MorphError before the rest are counted
LINEAR_BELOW = 1e-9  # sharpness under which the ramp is its limit, a straight line


class MorphError(ValueError):
    """Two models that cannot be morphed, saying exactly what differs."""


def _config_differences(a: SG2Config | SG3Config, b: SG2Config | SG3Config) -> list[str]:
    """What differs between two configs, in the words a performer knows the models by."""
    if type(a) is not type(b):
        kinds = {SG2Config: "StyleGAN2", SG3Config: "StyleGAN3"}
        return [f"A is a {kinds[type(a)]}, B a {kinds[type(b)]}"]
    found: list[str] = []
    if a.img_resolution != b.img_resolution:
        found.append(f"A is {a.img_resolution}px, B is {b.img_resolution}px")
    if a.c_dim != b.c_dim:
        def kind(c_dim: int) -> str:
            return f"conditional with {c_dim} classes" if c_dim else "unconditional"
        found.append(f"A is {kind(a.c_dim)}, B is {kind(b.c_dim)}")
    if a.mapping_layers != b.mapping_layers:
        found.append(f"A's mapping has {a.mapping_layers} layers, B's has {b.mapping_layers}")
    if isinstance(a, SG2Config) and isinstance(b, SG2Config):
        if a.architecture != b.architecture:
            found.append(f"A's architecture is {a.architecture}, B's is {b.architecture}")
        for res in sorted(a.channels.keys() & b.channels.keys()):
            if a.channels[res] != b.channels[res]:
                found.append(f"b{res} has {a.channels[res]} channels in A and "
                             f"{b.channels[res]} in B")
    elif isinstance(a, SG3Config) and isinstance(b, SG3Config) and a.layers != b.layers:
        found += [f"layer {x.idx} is {x.name} in A and {y.name} in B" if x.name != y.name
                  else f"layer {x.name} is designed differently in A and B"
                  for x, y in zip(a.layers, b.layers, strict=False) if x != y]
    named = {"img_resolution", "c_dim", "architecture", "mapping_layers", "channels", "layers"}
    for f in dataclasses.fields(a):
        if f.name not in named and getattr(a, f.name) != getattr(b, f.name):
            found.append(f"{f.name} is {getattr(a, f.name)} in A and {getattr(b, f.name)} in B")
    return found


def _tensor_differences(a: SG2Generator | SG3Generator,
                        b: SG2Generator | SG3Generator) -> list[str]:
    """Keys, shapes, dtypes and devices: what `torch.lerp` between the two needs to agree."""
    sa, sb = a.state_dict(), b.state_dict()
    found = [f"{key} is only in A" for key in sa if key not in sb]
    found += [f"{key} is only in B" for key in sb if key not in sa]
    for key in sa.keys() & sb.keys():
        ta, tb = sa[key], sb[key]
        if ta.shape != tb.shape:
            found.append(f"{key} is {tuple(ta.shape)} in A and {tuple(tb.shape)} in B")
        if ta.dtype != tb.dtype:
            found.append(f"{key} is {ta.dtype} in A and {tb.dtype} in B")
        if ta.device != tb.device:
            found.append(f"{key} is on {ta.device} in A and on {tb.device} in B")
    return sorted(found)


def check_compatible(a: SG2Generator | SG3Generator, b: SG2Generator | SG3Generator) -> None:
    """Raise MorphError naming every difference that makes a blend of `a` and `b` meaningless
    or impossible. The configs are compared first (every field: even lr_mul changes what a
    stored weight means); only when they agree are the tensors compared, since a config
    difference would otherwise be repeated once per tensor it reshapes."""
    found = _config_differences(a.config, b.config) or _tensor_differences(a, b)
    if found:
        listed = found[:MAX_LISTED]
        if len(found) > MAX_LISTED:
            listed.append(f"and {len(found) - MAX_LISTED} more")
        raise MorphError("cannot morph these models: " + "; ".join(listed))


def depth(key: str, img_resolution: int, last_layer: int = 0) -> float:
    """Where a state-dict key sits between the mapping / 4x4 block (0) and the last block (1):
    (log2(res) - 2) / (log2(img_resolution) - 2) for `synthesis.b{res}.*`, 0 for `mapping.*`
    (the mapping decides w, so it belongs with the coarsest layers). A StyleGAN3's layer
    `synthesis.L{i}_*` sits at i / `last_layer`, its input at 0."""
    if key.startswith(("mapping.", "synthesis.input.")):
        return 0.0
    if layer := re.match(r"synthesis\.L(\d+)_", key):
        return int(layer[1]) / last_layer if last_layer else 0.0
    match = re.match(r"synthesis\.b(\d+)\.", key)
    if match is None:
        raise MorphError(f"{key} is neither a mapping nor a synthesis-block tensor")
    steps = img_resolution.bit_length() - 3  # log2(img_resolution) - 2: blocks after b4
    return (int(match[1]).bit_length() - 3) / steps if steps else 0.0


def ramp(d: float, centre: float, sharpness: float) -> float:
    """The logistic sigmoid(sharpness * (d - centre)) rescaled to run from exactly 0 at depth 0
    to exactly 1 at depth 1, so at full strength the first block is purely one model and the
    last purely the other whatever the sharpness; steepest at `centre`, and a straight line
    in the limit of sharpness 0. Written with tanh (sigmoid(x) = (1 + tanh(x / 2)) / 2) so a
    gentle curve is not the difference of two numbers near 1/2."""
    if sharpness < LINEAR_BELOW:
        return d

    def t(x: float) -> float:
        return math.tanh(sharpness * (x - centre) / 2.0)

    return (t(d) - t(0.0)) / (t(1.0) - t(0.0))


# Share of B (0: all A) for a tensor at depth d, given mix, centre and sharpness.
CURVES: dict[str, Callable[[float, float, float, float], float]] = {
    "uniform": lambda d, mix, centre, sharpness: mix,
    "coarse-a": lambda d, mix, centre, sharpness: mix * ramp(d, centre, sharpness),
    "coarse-b": lambda d, mix, centre, sharpness: mix * (1.0 - ramp(d, centre, sharpness)),
    "swap": lambda d, mix, centre, sharpness: 1.0 if d >= centre else 0.0,
}


class Morph:
    """Two generators of one architecture blended weight by weight into a third, reused one.

    Curves, as the share of B at depth d (0: mapping and 4x4, 1: the last block), with
    `mix`, `centre` and `sharpness` clamped to 0..1, 0..1 and >= 0 so a fader cannot break
    the show:

    - "uniform":  mix everywhere, a plain cross-fade.
    - "coarse-a": mix * ramp(d), where ramp is the logistic sigmoid(sharpness * (d - centre))
      rescaled to 0 at d = 0 and 1 at d = 1 (see `ramp`). mix 0 is A everywhere; mix 1 is
      the curve at full strength: layout and pose exactly A's, texture and colour exactly
      B's, rising monotonically with depth.
    - "coarse-b": mix * (1 - ramp(d)), the mirror: layout from B, texture from A.
    - "swap":     1 where d >= centre, else 0: whole layers swapped, no blending; mix is
      ignored (move the centre instead).

    Every state-dict tensor is blended, buffers included: noise_const (the trained noise),
    w_avg (so truncation pulls towards the blend's own average) and resample_filter. A and B
    are read, not copied, each time a share changes: do not change their weights while
    morphing. Call `set` from the thread that runs `generator`, between frames, since it
    rewrites the weights that a running frame reads.
    """

    def __init__(self, a: SG2Generator | SG3Generator, b: SG2Generator | SG3Generator) -> None:
        check_compatible(a, b)
        self.a, self.b = a, b
        self.generator = copy.deepcopy(a)
        res = a.config.img_resolution
        last = len(a.config.layers) - 1 if isinstance(a.config, SG3Config) else 0
        blend, sa, sb = self.generator.state_dict(), a.state_dict(), b.state_dict()
        # (blended, A's, B's) tensor by key; the copy of A starts where share 0 puts it
        self._tensors = {key: (blend[key], sa[key], sb[key]) for key in blend}
        self._depths = {key: depth(key, res, last) for key in blend}
        self._shares = dict.fromkeys(blend, 0.0)
        self._last: tuple[object, ...] | None = None
        self.recomputed = 0  # set() calls that changed the blend: a still fader adds nothing

    def layer_mix(self, mix: float, curve: str = "uniform", centre: float = 0.5,
                  sharpness: float = 10.0) -> dict[str, float]:
        """The share of B (0 = all A) for every state-dict key, for tests and for drawing the
        curve in a UI."""
        mix, curve, centre, sharpness = self._arguments(mix, curve, centre, sharpness)
        shape = CURVES[curve]
        return {key: shape(d, mix, centre, sharpness) for key, d in self._depths.items()}

    def set(self, mix: float, curve: str = "uniform", centre: float = 0.5,
            sharpness: float = 10.0) -> SG2Generator | SG3Generator:
        """Blend at these settings and return the blended generator. Nothing is done when the
        settings that matter to the curve are the ones already applied (a mix change under
        "swap" is no change), and a tensor whose share did not move is not rewritten."""
        mix, curve, centre, sharpness = self._arguments(mix, curve, centre, sharpness)
        relevant = {"uniform": (mix,), "swap": (centre,)}.get(curve, (mix, centre, sharpness))
        if (curve, *relevant) == self._last:
            return self.generator
        self._last = (curve, *relevant)
        self.recomputed += 1
        with torch.no_grad():
            for key, share in self.layer_mix(mix, curve, centre, sharpness).items():
                if share != self._shares[key]:
                    blend, ta, tb = self._tensors[key]
                    torch.lerp(ta, tb, share, out=blend)  # exact at 0 and 1
                    self._shares[key] = share
        return self.generator

    @staticmethod
    def _arguments(mix: float, curve: str, centre: float,
                   sharpness: float) -> tuple[float, str, float, float]:
        """Validated and clamped: an unknown curve or a NaN is a mistake worth stopping for,
        a fader past its end is not."""
        if curve not in CURVES:
            raise ValueError(f"curve is one of {', '.join(CURVES)}, got {curve!r}")
        values = (float(mix), float(centre), float(sharpness))
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"mix, centre and sharpness must be finite, got {values}")
        mix, centre, sharpness = values
        return min(max(mix, 0.0), 1.0), curve, min(max(centre, 0.0), 1.0), max(sharpness, 0.0)

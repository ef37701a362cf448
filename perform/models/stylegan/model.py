"""A StyleGAN checkpoint as a patch plays it: `model(z, psi=0.7)` is an image of the show's size.

The controls a performer reaches for: z or w (one w, or one per layer for W+), truncation
`psi` towards the average w or any `centre`, style mixing, directions (SeFa), the noise and
its strength, the class of a conditional model, a StyleGAN3's camera, and for two models
of one architecture a weight morph under a fader (`StyleGANMorph`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from perform.models.graphs import Graphed
from perform.models.stylegan.checkpoints import read_checkpoint
from perform.models.stylegan.directions import Directions, factorise
from perform.models.stylegan.morph import Morph
from perform.models.stylegan.sg2 import NOISE_MODES, Noise, SG2Generator
from perform.models.stylegan.sg3 import SG3Generator

# "mixed": half precision (fp16 on GPUs, bf16 on CPUs) on the blocks the checkpoint trained
# that way, float32 elsewhere; "bf16" and "fp16" run everything in that type; "auto" is
# "mixed" on CUDA and "fp32" elsewhere
PRECISIONS = ("auto", "fp32", "mixed", "bf16", "fp16")


class StyleGAN:
    """One generator on one device, drawing at the show's size. On CUDA the synthesis runs
    as a recorded graph once a frame has settled (`graphs=False`: always eagerly)."""

    def __init__(self, generator: SG2Generator | SG3Generator, name: str, width: int, height: int,
                 device: torch.device, precision: str = "auto", graphs: bool = True) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "auto":
            precision = "mixed" if device.type == "cuda" else "fp32"
        self.generator, self.name, self.config = generator, name, generator.config
        self.width, self.height, self.device = width, height, device
        self.precision = precision
        c = self.config
        self.z_dim, self.w_dim, self.c_dim = c.z_dim, c.w_dim, c.c_dim
        self.num_ws, self.resolution = c.num_ws, c.img_resolution
        self.w_avg = self.generator.mapping.w_avg
        self._directions: dict[tuple[object, int], Directions] = {}
        self._camera_at = (0.0, 0.0, 0.0)  # StyleGAN3: translate x, y and rotate, as drawn
        self._picture = Graphed(self._synthesise, name, graphs and device.type == "cuda")

    @torch.inference_mode()
    def w(self, z: object, c: int = 0) -> torch.Tensor:
        """The style vector of latent `z` (and class `c`): a point to keep, mix or walk from."""
        return self.generator.mapping(self._vector(z, self.z_dim, "z")[None], self._class(c))[0]

    @torch.inference_mode()
    def __call__(self, z: object = None, *, w: object = None, psi: float = 1.0,
                 centre: object = None, c: int = 0, noise: str = "const",
                 noise_strength: float = 1.0, noise_phase: float = 0.0,
                 translate: tuple[float, float] = (0.0, 0.0),
                 rotate: float = 0.0) -> torch.Tensor:
        """An image (height, width, 3) in 0..1 from `z`, or from `w` (w_dim numbers, or
        num_ws x w_dim for one w per layer). `noise` is "const", "random", "animated" (a
        seamless loop as `noise_phase` goes from 0 to 1) or "none" (StyleGAN2 only).
        `translate` (in image widths) and `rotate` (degrees) move a StyleGAN3's camera."""
        if noise not in NOISE_MODES:
            raise ValueError(f"noise is one of {', '.join(NOISE_MODES)}, got {noise!r}")
        self._camera(translate, rotate)
        ws = self._ws(z, w, c)
        centre_w = self.w_avg if centre is None else self._vector(centre, self.w_dim, "centre")
        ws = centre_w.lerp(ws, float(psi))
        return self._picture(noise, (ws[None],), (float(noise_strength), float(noise_phase)))

    def ws(self, z: object, c: int = 0) -> torch.Tensor:
        """W+ of latent `z`: its w once per layer, ready for mixing and directions."""
        return self.w(z, c).expand(self.num_ws, -1)

    def directions(self, layers: str | Sequence[int] = "all", k: int = 16) -> Directions:
        """Meaningful directions in w (SeFa), strongest first, for these layers: "coarse",
        "middle", "fine", "all" or w indices. `.apply(ws, [1.5, -2])` moves a W+ along
        them. Computed once per choice, in a fraction of a second."""
        key = (layers if isinstance(layers, str) else tuple(layers), k)
        found = self._directions.get(key)
        if found is None:
            found = self._directions[key] = factorise(self.generator, layers, k)
        return found

    def mix(self, a: object, b: object, from_layer: int) -> torch.Tensor:
        """Style mixing: layers before `from_layer` take their w from `a` (layout, pose),
        the rest from `b` (texture, colour); a and b are w vectors or W+."""
        if not 0 <= from_layer <= self.num_ws:
            raise ValueError(f"{self!r} has layers 0 to {self.num_ws}, got {from_layer}")
        first, second = self._ws(None, a, 0), self._ws(None, b, 0)
        return torch.cat([first[:from_layer], second[from_layer:]])

    def _camera(self, translate: tuple[float, float], rotate: float) -> None:
        """StyleGAN3 draws Fourier features through a transform: the camera, free to move."""
        tx, ty = (float(v) for v in translate)
        if not isinstance(self.generator, SG3Generator):
            if tx or ty or rotate:
                raise ValueError(f"{self!r} is a StyleGAN2: camera moves need a StyleGAN3")
            return
        if (tx, ty, float(rotate)) == self._camera_at:
            return  # no copy to the device while the camera stands still
        self._camera_at = (tx, ty, float(rotate))
        angle = math.radians(float(rotate))
        camera = torch.tensor([[math.cos(angle), -math.sin(angle), tx],
                               [math.sin(angle), math.cos(angle), ty], [0.0, 0.0, 1.0]])
        self.generator.synthesis.input.transform.copy_(camera, non_blocking=True)

    def _synthesise(self, noise_mode: Hashable, tensors: Sequence[torch.Tensor],
                    scalars: Sequence[float | torch.Tensor]) -> torch.Tensor:
        """W+ to the show's picture: what a CUDA graph records (see `Graphed`)."""
        (ws,), (strength, phase) = tensors, scalars
        image = self._draw(ws, Noise(str(noise_mode), strength, phase))
        if image.shape[-2:] != (self.height, self.width):
            image = F.interpolate(image, size=(self.height, self.width), mode="bilinear",
                                  align_corners=False, antialias=True)
        return image[0, :3].permute(1, 2, 0).mul(0.5).add(0.5).clamp(0.0, 1.0)

    def _draw(self, ws: torch.Tensor, noise: Noise) -> torch.Tensor:
        """The synthesis at this model's precision, as float32."""
        half = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        if self.precision == "mixed" and isinstance(self.generator, SG2Generator):
            return self.generator.synthesis(ws, noise, half=half)
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            with torch.autocast(self.device.type, dtype=dtype):
                return self.generator.synthesis(ws, noise).float()
        return self.generator.synthesis(ws, noise)  # fp32 (and StyleGAN3 under "mixed")

    def _ws(self, z: object, w: object, c: int) -> torch.Tensor:
        if (z is None) == (w is None):
            raise ValueError("give the model either z or w")
        if w is None:
            mapped = self.generator.mapping(self._vector(z, self.z_dim, "z")[None],
                                            self._class(c))[0]
            return mapped.expand(self.num_ws, -1)
        t = self._upload(w)
        if t.shape == (self.w_dim,):
            return t.expand(self.num_ws, -1)
        if t.shape == (self.num_ws, self.w_dim):
            return t
        raise ValueError(f"{self!r} takes w as {self.w_dim} numbers or {self.num_ws} x "
                         f"{self.w_dim} (one per layer), got shape {tuple(t.shape)}")

    def _upload(self, value: object) -> torch.Tensor:
        """Numbers from the patch onto the device without waiting for the frame before."""
        return torch.as_tensor(value, dtype=torch.float32).to(self.device, non_blocking=True)

    def _vector(self, value: object, length: int, what: str) -> torch.Tensor:
        t = self._upload(value).reshape(-1)
        if t.numel() != length:
            raise ValueError(f"{self!r} takes {what} as {length} numbers, got {t.numel()}")
        return t

    def _class(self, c: int) -> torch.Tensor | None:
        if not self.c_dim:
            return None
        if not 0 <= int(c) < self.c_dim:
            raise ValueError(f"{self!r} has classes 0 to {self.c_dim - 1}, got {c}")
        return self._upload(F.one_hot(torch.tensor([int(c)]), self.c_dim))

    def __repr__(self) -> str:
        kind = "StyleGAN3" if isinstance(self.generator, SG3Generator) else "StyleGAN2"
        return f"{kind} {self.resolution}px ({self.name})"


def load_stylegan(path: Path, width: int, height: int, device: torch.device,
                  precision: str = "auto") -> StyleGAN:
    """A checkpoint file as a model a patch plays; channel-last on the CPU and on CUDA, where
    half-precision convolutions want it too (see `SG2Generator.channels_last`)."""
    generator = read_checkpoint(path).build(device)
    if device.type in ("cpu", "cuda") and isinstance(generator, SG2Generator):
        generator.channels_last()  # StyleGAN3 runs its feature maps channel-last itself
    return StyleGAN(generator, path.name, width, height, device, precision)


class StyleGANMorph(StyleGAN):
    """Two checkpoints of one architecture blended weight by weight under a fader:
    `pair(z, mix=0.3, curve="coarse-a")` draws with 30 % of B (see `morph.CURVES`)."""

    def __init__(self, a: StyleGAN, b: StyleGAN) -> None:
        self.morph = Morph(a.generator, b.generator)
        super().__init__(self.morph.generator, f"{a.name} | {b.name}", a.width, a.height,
                         a.device, a.precision)

    def __call__(self, z: object = None, *, mix: float = 0.0, curve: str = "uniform",
                 centre: float = 0.5, sharpness: float = 10.0,
                 **controls: Any) -> torch.Tensor:
        """Blend (only when the fader moved), then draw as `StyleGAN.__call__` does."""
        self.morph.set(float(mix), curve, float(centre), float(sharpness))
        return super().__call__(z, **controls)


class StyleGANCrossfade:
    """Two StyleGAN models that cannot morph their weights (other sizes, other
    architectures), crossfaded as images instead: `pair(z, mix=0.3)` is 70 % of A's picture
    over 30 % of B's, each drawn from the same z. Costs two frames while mixing, one at
    either end. Takes the morph's arguments, so a patch works with either."""

    def __init__(self, a: StyleGAN, b: StyleGAN, why: str) -> None:
        if a.z_dim != b.z_dim:
            raise ValueError(f"{why}; nor can they crossfade from one z: A takes {a.z_dim} "
                             f"numbers, B {b.z_dim}")
        self.a, self.b, self.why = a, b, why
        self.z_dim, self.device = a.z_dim, a.device

    def __call__(self, z: object = None, *, mix: float = 0.0, curve: str = "uniform",
                 centre: float = 0.5, sharpness: float = 10.0,
                 **controls: Any) -> torch.Tensor:
        """`curve`, `centre` and `sharpness` shape weight morphs; an image crossfade has no
        layers to shape, so they are accepted and unused."""
        mix = min(max(float(mix), 0.0), 1.0)
        if mix <= 0.0:
            return self.a(z, **controls)
        if mix >= 1.0:
            return self.b(z, **controls)
        return torch.lerp(self.a(z, **controls), self.b(z, **controls), mix)

    def __repr__(self) -> str:
        return f"crossfade({self.a!r}, {self.b!r})"

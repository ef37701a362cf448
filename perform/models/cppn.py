"""The embedded default model: a CPPN (compositional pattern producing network).

A small MLP is evaluated at every pixel on (x, y, radius) plus a latent vector z. Random
weights from a seed give one "model"; moving z evolves the image smoothly; blending two
seeds' weights is a model morph that needs no checkpoint.

On a CPU the network is bound by memory traffic, not arithmetic, so every buffer is
allocated once per output size and every activation runs in place. The (x, y, r) part of
the first layer is constant per model, so it is computed once and z only adds a bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ACTIVATIONS = ("tanh", "sin", "tanh", "sin")
RGB_LANES = 16  # the colour layer is computed this wide; the first 3 columns are RGB


@dataclass(frozen=True)
class CPPNWeights:
    """All weights of one CPPN; two with the same shapes can be blended."""

    coords: torch.Tensor  # (3, width): x, y, r -> first hidden layer
    latent: torch.Tensor  # (z_dim, width): z -> first hidden layer
    bias: torch.Tensor  # (width,)
    hidden: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (weight (width, width), bias)
    rgb: tuple[torch.Tensor, torch.Tensor]  # (width, 3), (3,)

    @classmethod
    def random(cls, seed: int, z_dim: int, width: int, device: torch.device) -> CPPNWeights:
        g = torch.Generator().manual_seed(seed)

        def normal(*shape: int, std: float) -> torch.Tensor:
            return (torch.randn(*shape, generator=g) * std).to(device)

        # Scales chosen by eye: large enough for folds and bands, small enough to stay smooth.
        coords = normal(3, width, std=2.4)
        latent = normal(z_dim, width, std=0.5)
        bias = normal(width, std=0.5)
        hidden = tuple((normal(width, width, std=2.2 / math.sqrt(width)), normal(width, std=0.3))
                       for _ in ACTIVATIONS[1:])
        rgb = (normal(width, 3, std=2.4 / math.sqrt(width)), normal(3, std=0.3))
        return cls(coords, latent, bias, hidden, rgb)

    def lerp(self, other: CPPNWeights, mix: float) -> CPPNWeights:
        def blend(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.lerp(a, b, mix)

        return CPPNWeights(
            blend(self.coords, other.coords), blend(self.latent, other.latent),
            blend(self.bias, other.bias),
            tuple((blend(wa, wb), blend(ba, bb))
                  for (wa, ba), (wb, bb) in zip(self.hidden, other.hidden, strict=True)),
            (blend(self.rgb[0], other.rgb[0]), blend(self.rgb[1], other.rgb[1])),
        )

    def compile(self) -> CompiledCPPN:
        """Run each tanh as a sigmoid: input scaled by 2, and 2s - 1 folded into the next layer."""
        acts = ACTIVATIONS
        gain = [2.0 if act == "tanh" else 1.0 for act in acts]
        hidden = []
        for i, (w, b) in enumerate(self.hidden):
            w, b = _unfold(w, b, acts[i])
            hidden.append((w * gain[i + 1], b * gain[i + 1]))
        rgb_w, rgb_b = _unfold(*self.rgb, acts[-1])
        # CPU matmul libraries are several times faster writing 16 columns than 3.
        rgb_w = torch.nn.functional.pad(rgb_w, (0, RGB_LANES - 3))
        rgb_b = torch.nn.functional.pad(rgb_b, (0, RGB_LANES - 3))
        return CompiledCPPN(self.coords * gain[0], self.latent * gain[0], self.bias * gain[0],
                            tuple(hidden), rgb_w, rgb_b,
                            tuple("sin" if act == "sin" else "sigmoid" for act in acts))


def _unfold(w: torch.Tensor, b: torch.Tensor, previous: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights that take sigmoid output s where they took tanh output 2s - 1."""
    if previous != "tanh":
        return w, b
    return w * 2.0, b - w.sum(dim=0)


@dataclass(frozen=True)
class CompiledCPPN:
    """The weights as the renderer runs them."""

    coords: torch.Tensor
    latent: torch.Tensor
    bias: torch.Tensor
    hidden: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    rgb: torch.Tensor
    rgb_bias: torch.Tensor
    acts: tuple[str, ...]


def pixel_coords(width: int, height: int, device: torch.device) -> torch.Tensor:
    """(height*width, 3) rows of x, y, r; the shorter side spans [-1, 1]."""
    scale = 1.0 / min(width, height)
    xs = (torch.arange(width, dtype=torch.float32) * 2 + 1 - width) * scale
    ys = (torch.arange(height, dtype=torch.float32) * 2 + 1 - height) * scale
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    r = torch.sqrt(x * x + y * y)
    return torch.stack([x, y, r], dim=-1).reshape(-1, 3).to(device)


class CPPNRenderer:
    """Evaluates CPPN weights at one output size into reused buffers.

    Pixels go through the network in row chunks small enough to stay in the CPU cache, and
    tanh runs as a sigmoid with its scale folded into the weights (tanh x = 2 sigmoid 2x - 1):
    on CPUs without a fast vector tanh that alone is several times faster.
    """

    CHUNK = 32768

    def __init__(self, width: int, height: int, hidden: int, device: torch.device) -> None:
        self.width, self.height = width, height
        pixels = width * height
        self.coords = pixel_coords(width, height, device)
        chunk = pixels if device.type != "cpu" else min(pixels, self.CHUNK)
        self.ping = torch.empty(chunk, hidden, device=device)
        self.pong = torch.empty(chunk, hidden, device=device)
        self.lanes = torch.empty(chunk, RGB_LANES, device=device)
        self.rgb = torch.empty(pixels, 3, device=device)
        self.rgb8 = torch.empty(pixels, 3, dtype=torch.uint8, device=device)

    def coords_part(self, layers: CompiledCPPN) -> torch.Tensor:
        """The constant (x, y, r) contribution of the first layer, computed once per model."""
        return self.coords @ layers.coords

    @torch.inference_mode()
    def render(self, layers: CompiledCPPN, coords_part: torch.Tensor,
               z: torch.Tensor) -> torch.Tensor:
        """(height, width, 3) uint8; the buffer is reused by the next call."""
        first_bias = z @ layers.latent + layers.bias
        chunk = self.ping.shape[0]
        for start in range(0, coords_part.shape[0], chunk):
            rows = coords_part[start:start + chunk]
            n = rows.shape[0]
            h = _activate(torch.add(rows, first_bias, out=self.ping[:n]), layers.acts[0])
            buffers = (self.pong[:n], self.ping[:n])
            for i, (w, b) in enumerate(layers.hidden):
                out = torch.addmm(b, h, w, out=buffers[i % 2])
                h = _activate(out, layers.acts[i + 1])
            lanes = torch.addmm(layers.rgb_bias, h, layers.rgb, out=self.lanes[:n])
            torch.sigmoid(lanes[:, :3], out=self.rgb[start:start + n])
        self.rgb.mul_(255.0).add_(0.5)
        self.rgb8.copy_(self.rgb)
        return self.rgb8.view(self.height, self.width, 3)


def _activate(x: torch.Tensor, act: str) -> torch.Tensor:
    return x.sin_() if act == "sin" else x.sigmoid_()


class CPPN:
    """One seeded CPPN at a fixed output size: `model(z)` is an image."""

    def __init__(self, seed: int, width: int, height: int, device: torch.device,
                 z_dim: int = 16, hidden: int = 32) -> None:
        self.seed, self.z_dim, self.hidden = seed, z_dim, hidden
        self.device = device
        self.weights = CPPNWeights.random(seed, z_dim, hidden, device)
        self.layers = self.weights.compile()
        self.renderer = CPPNRenderer(width, height, hidden, device)
        self.coords_part = self.renderer.coords_part(self.layers)

    def __call__(self, z: object) -> torch.Tensor:
        return self.renderer.render(self.layers, self.coords_part, as_latent(z, self))

    def __repr__(self) -> str:
        return f"cppn:seed={self.seed}"


class CPPNMorph:
    """Two CPPNs blended weight by weight: `pair(z, mix=0.3)` is 30 % of the way to `b`."""

    def __init__(self, a: CPPN, b: CPPN) -> None:
        if (a.z_dim, a.hidden) != (b.z_dim, b.hidden):
            raise ValueError(f"cannot morph {a!r} and {b!r}: their layer sizes differ")
        if (a.renderer.width, a.renderer.height) != (b.renderer.width, b.renderer.height):
            raise ValueError("cannot morph models made for different output sizes")
        self.a, self.b = a, b
        self.z_dim, self.device = a.z_dim, a.device
        r = a.renderer
        self.renderer = CPPNRenderer(r.width, r.height, a.hidden, a.device)
        self.coords_part = torch.empty_like(a.coords_part)
        self._mix: float | None = None
        self._layers = a.layers

    def __call__(self, z: object, mix: float = 0.0) -> torch.Tensor:
        mix = min(max(float(mix), 0.0), 1.0)
        if mix != self._mix:
            self._layers = self.a.weights.lerp(self.b.weights, mix).compile()
            torch.lerp(self.a.coords_part, self.b.coords_part, mix, out=self.coords_part)
            self._mix = mix
        return self.renderer.render(self._layers, self.coords_part, as_latent(z, self))

    def __repr__(self) -> str:
        return f"morph({self.a!r}, {self.b!r})"


def as_latent(z: object, model: CPPN | CPPNMorph) -> torch.Tensor:
    """Accept numpy arrays, lists or tensors; check the length a performer got wrong."""
    t = torch.as_tensor(z, dtype=torch.float32).reshape(-1)
    if t.numel() != model.z_dim:
        raise ValueError(f"{model!r} takes a latent of {model.z_dim} numbers, got {t.numel()}")
    return t.to(model.device)

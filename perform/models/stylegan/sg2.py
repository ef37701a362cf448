"""StyleGAN2, written from the paper (Karras et al. 2020, arXiv 1912.04958) and the layout of
the checkpoints artists train: parameter names and shapes follow NVlabs' files, so their
state dicts load as they are (`load_state_dict(strict=True)`).

The generator is two networks. The mapping network turns a latent z (and a class, for a
conditional model) into a style vector w. The synthesis network starts from a learned 4x4
constant and doubles the resolution block by block; every 3x3 convolution is modulated by
a style made from one w (one per layer: W+), then demodulated so each output channel has
unit variance, and each block adds per-pixel noise. RGB is read out at every resolution
and summed ("skip"), or only at the end ("resnet", "orig").

Only inference: no gradients, no training-time tricks. Modulation is applied to the
activations (scale in, shared-weight conv, scale out) so the conv weights stay static,
which is what CUDA graphs and exporters need; the result is the same as per-sample weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE, LRELU_GAIN = 0.2, math.sqrt(2.0)
DEMOD_EPS = 1e-8
HALF_TYPES = (torch.float16, torch.bfloat16)
FIR = (1.0, 3.0, 3.0, 1.0)  # the binomial up-sampling filter (outer product with itself)


@dataclass(frozen=True)
class Noise:
    """How the per-pixel noise plays: the trained fields ("const", the same every frame),
    fresh noise each frame ("random"), a smooth loop ("animated": at `phase` 0 and 1 the
    trained field, in between a second field rotated in so the variance never changes),
    or none. `strength` scales what training chose.

    `strength` and `phase` may be 0-d tensors on the model's device: a recorded CUDA graph
    reads them from there, so they can change between replays."""

    mode: str = "const"
    strength: float | torch.Tensor = 1.0
    phase: float | torch.Tensor = 0.0


NOISE_MODES = ("const", "random", "animated", "none")


@dataclass(frozen=True)
class SG2Config:
    """What a StyleGAN2 checkpoint needs besides its tensors."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0  # classes of a conditional model; 0: unconditional
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_features: int = 512  # width of the hidden mapping layers
    channels: dict[int, int] = field(default_factory=dict)  # resolution -> feature maps
    architecture: str = "skip"  # "skip", "resnet" or "orig"
    lr_mul: float = 0.01  # mapping learning-rate multiplier: weights are stored divided by it
    conv_clamp: float | None = None  # activations clamped to +-this (256 in ADA's defaults)
    num_fp16_res: int = 0  # highest-resolution blocks trained in half precision (ADA: 4)

    @property
    def resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * len(self.resolutions)

    @staticmethod
    def channels_for(img_resolution: int, channel_base: int = 32768,
                     channel_max: int = 512) -> dict[int, int]:
        """Feature maps per resolution as the configs define them: min(base / res, max)."""
        return {2 ** i: min(channel_base // 2 ** i, channel_max)
                for i in range(2, int(math.log2(img_resolution)) + 1)}


class FullyConnected(nn.Module):
    """y = x W^T * gain + b * lr_mul, with the equalised learning rate of the paper."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0,
                 bias_init: float = 0.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addmm(self.bias * self.lr_mul, x, (self.weight * self.weight_gain).t())
        return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN if self.activation else x


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Divide by the root of the second moment, as the mapping does with z and the class."""
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class Mapping(nn.Module):
    """z (and a class) to w, through `mapping_layers` fully connected layers."""

    def __init__(self, config: SG2Config) -> None:
        super().__init__()
        self.config = config
        if config.c_dim:
            self.embed = FullyConnected(config.c_dim, config.w_dim)
        features = [config.z_dim + (config.w_dim if config.c_dim else 0)]
        features += [config.mapping_features] * (config.mapping_layers - 1) + [config.w_dim]
        for i in range(config.mapping_layers):
            setattr(self, f"fc{i}", FullyConnected(features[i], features[i + 1],
                                                   lr_mul=config.lr_mul, activation=True))
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = _normalise(z)
        if self.config.c_dim:
            if c is None:
                raise ValueError("this model is conditional: give it a class")
            x = torch.cat([x, _normalise(self.embed(c))], dim=1)
        for i in range(self.config.mapping_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


def fir_filter(device: torch.device | None = None) -> torch.Tensor:
    taps = torch.tensor(FIR, device=device)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def upsample_fir(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Filter an image whose size was already doubled (zeros between samples) with the 4x4
    FIR at gain 4, after padding (before, after) on both axes; valid convolution.

    The filter is an outer product (checked when a checkpoint is built), so it runs as two
    passes of four shifted multiply-adds: a depthwise 4x4 convolution took a fifth of the
    whole frame on the CPU.
    """
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    taps = (kernel.sum(dim=1) * 2.0).flip(0).to(x.dtype)  # gain 2 on each axis
    for dim in (2, 3):
        size = x.shape[dim] - taps.shape[0] + 1
        out = x.narrow(dim, 0, size) * taps[0]
        for k in range(1, taps.shape[0]):
            out.addcmul_(x.narrow(dim, k, size), taps[k])  # no temporary per tap
        x = out
    return x


def separable(kernel: torch.Tensor) -> bool:
    """Whether a 2-D filter is the outer product of one 1-D filter with itself."""
    taps = kernel.sum(dim=1)
    return bool(torch.allclose(torch.outer(taps, taps) / taps.sum(), kernel, atol=1e-6))


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Twice the size: zeros between samples, then the FIR (the RGB skip path)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = x
    return upsample_fir(up, kernel, (2, 1))


def conv_up2(x: torch.Tensor, weight: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zeros between samples, pad, FIR, then a k x k convolution: the up-sampling layer.

    Done as a transposed convolution (stride 2) followed by the FIR, which is the same
    linear map at a quarter of the cost: the convolution and the filter commute once the
    whole padding is applied up front.
    """
    x = F.conv_transpose2d(x, weight.flip(2, 3).transpose(0, 1), stride=2)
    pad = 2 - (weight.shape[-1] - 1) // 2  # lines the transposed output up with the FIR
    return upsample_fir(x, kernel, (pad, pad))


class SynthesisLayer(nn.Module):
    """A modulated, demodulated k x k convolution with noise, bias, leaky ReLU and a clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: bool = False, conv_clamp: float | None = None,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        seeded = torch.Generator().manual_seed(resolution * 2 + up)  # the same loop every load
        self.register_buffer("noise_loop", torch.randn(resolution, resolution, generator=seeded),
                             persistent=False)
        self.register_buffer("resample_filter", fir_filter())  # kept in every layer's file
        self.up, self.resolution = up, resolution
        self.clamp = conv_clamp * gain if conv_clamp is not None else None
        self.gain = gain

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: Noise = Noise()) -> torch.Tensor:
        styles = self.affine(w)  # [B, in]
        weight = self.weight
        half = torch.is_autocast_enabled(x.device.type) or x.dtype in HALF_TYPES
        precise = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):  # at least float32: fp16 overflows
            styles = styles.to(precise)
            if half:
                # demodulation undoes any scale of the styles: divided by their largest,
                # activations times styles stay in half precision's range
                styles = styles / styles.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
            # sum over (in, kh, kw) of (weight * style)^2, without the per-sample weights
            demod = (styles.square() @ weight.to(precise).square().sum(dim=(2, 3)).t()
                     + DEMOD_EPS).rsqrt()
        x = x * styles.to(x.dtype)[:, :, None, None]
        if self.up:
            x = conv_up2(x, weight, self.resample_filter)
        else:
            x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        # leaky ReLU commutes with a positive gain, so the gain rides along with the
        # demodulation and the bias: one pass for all three, the rest in place
        gain = LRELU_GAIN * self.gain
        x = torch.addcmul((self.bias * gain)[None, :, None, None], x,
                          (demod * gain)[:, :, None, None])
        self._add_noise(x, noise, gain)
        F.leaky_relu_(x, LRELU_SLOPE)
        return x.clamp_(-self.clamp, self.clamp) if self.clamp is not None else x

    def _add_noise(self, x: torch.Tensor, noise: Noise, gain: float) -> None:
        """Add this frame's noise to `x` in place, times the activation `gain`."""
        strength = self.noise_strength * (noise.strength * gain)
        if noise.mode == "const":
            x.add_(self.noise_const * strength)
        elif noise.mode == "random":
            b, _, h, w = x.shape
            x.add_(torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype) * strength)
        elif noise.mode == "animated":
            angle = 2.0 * math.pi * noise.phase
            if isinstance(angle, torch.Tensor):  # read on the device: no sync, graph-safe
                cos, sin = angle.cos(), angle.sin()
            else:
                cos, sin = math.cos(angle), math.sin(angle)
            x.add_((self.noise_const * cos + self.noise_loop * sin) * strength)


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to RGB, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]
        return x.clamp(-self.clamp, self.clamp) if self.clamp is not None else x


class Skip(nn.Module):
    """The resnet block's shortcut: up-sample, 1x1 conv without bias, gain sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.register_buffer("resample_filter", fir_filter())
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = conv_up2(x, self.weight * self.weight_gain, self.resample_filter)
        return up * math.sqrt(0.5)


class SynthesisBlock(nn.Module):
    """One resolution: (4x4 constant or up-sampling conv), conv, RGB out."""

    def __init__(self, config: SG2Config, resolution: int) -> None:
        super().__init__()
        c = config
        out_channels = c.channels[resolution]
        self.resolution = resolution
        self.architecture = c.architecture
        self.is_last = resolution == c.img_resolution
        self.memory_format = torch.contiguous_format
        # the blocks the checkpoint trained in half precision: the ones "mixed" runs in half
        first_half = max(2 ** (int(math.log2(c.img_resolution)) + 1 - c.num_fp16_res), 8)
        self.use_half = c.num_fp16_res > 0 and resolution >= first_half
        resnet = c.architecture == "resnet" and resolution > 4
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            in_channels = c.channels[resolution // 2]
            self.conv0 = SynthesisLayer(in_channels, out_channels, c.w_dim, resolution,
                                        up=True, conv_clamp=c.conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, c.w_dim, resolution,
                                    conv_clamp=c.conv_clamp,
                                    gain=math.sqrt(0.5) if resnet else 1.0)
        self.has_rgb = self.is_last or c.architecture == "skip"
        if self.has_rgb:
            self.torgb = ToRGB(out_channels, c.img_channels, c.w_dim, conv_clamp=c.conv_clamp)
        self.register_buffer("resample_filter", fir_filter())  # up-samples the RGB skip
        if resnet:
            self.skip = Skip(c.channels[resolution // 2], out_channels)

    @property
    def num_conv(self) -> int:
        return 1 if self.resolution == 4 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise: Noise, half: torch.dtype | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`half`: run this block in that dtype if the checkpoint trained it in half
        precision (the clamp keeps activations in range); the RGB image stays float32."""
        if half is not None and self.use_half:
            with torch.autocast(ws.device.type, dtype=half):
                x, rgb = self._layers(x, ws, noise)
        else:  # after a half block, back to float32 (mixed precision only)
            x, rgb = self._layers(x if x is None or half is None else x.float(), ws, noise)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if rgb is not None:
            img = rgb.float() if img is None else img + rgb.float()
        return x, img

    def _layers(self, x: torch.Tensor | None, ws: torch.Tensor,
                noise: Noise) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.resolution == 4:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            x = x.contiguous(memory_format=self.memory_format)  # the convs keep it after
            x = self.conv1(x, ws[:, 0], noise)
        else:
            assert x is not None
            shortcut = self.skip(x) if hasattr(self, "skip") else None
            x = self.conv0(x, ws[:, 0], noise)
            x = self.conv1(x, ws[:, 1], noise)
            if shortcut is not None:
                x = shortcut + x
        return x, self.torgb(x, ws[:, self.num_conv]) if self.has_rgb else None


class Synthesis(nn.Module):
    """w+ (one w per layer) to an image in -1..1."""

    def __init__(self, config: SG2Config) -> None:
        super().__init__()
        self.config = config
        for resolution in config.resolutions:
            setattr(self, f"b{resolution}", SynthesisBlock(config, resolution))

    def forward(self, ws: torch.Tensor, noise: Noise = Noise(),
                half: torch.dtype | None = None) -> torch.Tensor:
        """`half`: the dtype for the blocks the checkpoint trained in half precision
        (float16 on a GPU, bfloat16 on a CPU); None runs everything in the input's dtype."""
        x = img = None
        start = 0
        for resolution in self.config.resolutions:
            block: SynthesisBlock = getattr(self, f"b{resolution}")
            x, img = block(x, img, ws[:, start:start + block.num_conv + 1], noise, half)
            start += block.num_conv
        assert img is not None
        return img


class SG2Generator(nn.Module):
    """mapping + synthesis under NVlabs' names, so their state dicts load as they are."""

    def __init__(self, config: SG2Config) -> None:
        super().__init__()
        self.config = config
        self.mapping = Mapping(config)
        self.synthesis = Synthesis(config)

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    def channels_last(self) -> SG2Generator:
        """Lay weights and activations out channel-last (NHWC): oneDNN's convolutions skip a
        reorder per layer, about 9 % of a bf16 frame on the CPU."""
        self.to(memory_format=torch.channels_last)
        for module in self.synthesis.modules():
            if isinstance(module, SynthesisBlock):
                module.memory_format = torch.channels_last
        return self

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, c)
        w = self.mapping.w_avg.to(w.dtype).lerp(w, truncation)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))

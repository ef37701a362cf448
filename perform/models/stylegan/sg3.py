"""StyleGAN3 (T and R configurations), written from the paper (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks", arXiv 2106.12423) and the checkpoint layout of NVlabs' files:
parameter and buffer names and shapes follow their state dicts, so those load as they are
(`load_state_dict(strict=True)`).

The idea of the paper: treat every feature map as samples of a continuous, band-limited
signal. The synthesis starts from Fourier features (sines at fixed frequencies, rotated and
translated by a style), and every layer is a modulated convolution followed by a "filtered
leaky ReLU": the signal is up-sampled to twice its rate, the non-linearity is applied there
(where the new high frequencies it creates have room), and a low-pass filter brings the rate
back down. Cutoffs grow layer by layer from 2 cycles per image to half the image resolution,
so each layer may only add detail its sampling rate can hold; the last layers are critically
sampled to allow sharp images. The T configuration uses 3x3 convolutions and separable
filters (translation equivariance); R uses 1x1 convolutions and radially symmetric down
filters (rotation equivariance too).

Coordinates: every layer's samples are laid on one continuous canvas in which the final
image spans [-0.5, 0.5] on both axes. A grid of `size` samples at `sampling_rate` samples per
unit puts sample n at (n + 0.5 - size / 2) / sampling_rate, so all grids share their centre
and the margins hang outside the image.

Everything that is not a tensor (sizes, rates, factors, paddings) lives in frozen dataclasses
(`SG3LayerSpec`, `SG3Config`), made by `design` for random models or filled from a pickle's
plain attributes by a loader; the filters are buffers, so loaded filters replace designed ones.

Only inference. StyleGAN3 has no noise inputs: `Noise` is accepted and ignored so callers can
treat SG2 and SG3 generators alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perform.models.stylegan.resample import Band, upfirdn2d
from perform.models.stylegan.sg2 import (
    DEMOD_EPS,
    LRELU_GAIN,
    LRELU_SLOPE,
    FullyConnected,
    Mapping,
    Noise,
    SG2Config,
)

CONFIGS = ("t", "r")
IGNORED_NOISE = Noise()  # StyleGAN3 has no noise inputs; the argument only mirrors StyleGAN2


# -- filter design -------------------------------------------------------------------------


def _kaiser_beta(taps: int, half_width: float, sampling_rate: float) -> float:
    """Kaiser's empirical window parameter for a transition band 2 * half_width wide.

    The attenuation a filter of `taps` taps can reach over that transition is
    A = 2.285 (taps - 1) * delta_omega + 7.95 dB, with delta_omega = 2 pi (2 half_width) / rate;
    beta = 0.1102 (A - 8.7) above 50 dB, 0.5842 (A - 21)^0.4 + 0.07886 (A - 21) from 21 to
    50 dB, else 0 (Kaiser 1974; Oppenheim & Schafer, "Discrete-Time Signal Processing").
    """
    delta_omega = 2.0 * math.pi * (2.0 * half_width) / sampling_rate
    attenuation = 2.285 * (taps - 1) * delta_omega + 7.95
    if attenuation > 50.0:
        return 0.1102 * (attenuation - 8.7)
    if attenuation >= 21.0:
        return 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    return 0.0


def _kaiser_window(taps: int, beta: float) -> torch.Tensor:
    """w[n] = I0(beta sqrt(1 - (2n / (taps - 1) - 1)^2)) / I0(beta), n = 0 .. taps - 1."""
    position = torch.linspace(-1.0, 1.0, taps, dtype=torch.float64)
    argument = beta * (1.0 - position.square()).clamp(min=0.0).sqrt()
    return torch.special.i0(argument) / torch.special.i0(torch.tensor(beta, dtype=torch.float64))


def kaiser_lowpass(taps: int, cutoff: float, half_width: float,
                   sampling_rate: float) -> torch.Tensor:
    """A linear-phase low-pass FIR: the ideal filter's impulse response, a sinc, truncated to
    `taps` samples by a Kaiser window sized for the transition band, normalised to unit DC
    gain. Frequencies in cycles per unit, like the layer's sampling rate.

    h[n] = (2 fc / fs) sinc(2 fc / fs * (n - (taps - 1) / 2)) * window[n], then h / sum(h).
    """
    relative_cutoff = 2.0 * cutoff / sampling_rate
    offsets = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2.0
    ideal = relative_cutoff * torch.sinc(relative_cutoff * offsets)
    kernel = ideal * _kaiser_window(taps, _kaiser_beta(taps, half_width, sampling_rate))
    return (kernel / kernel.sum()).float()


def jinc_lowpass(taps: int, cutoff: float, half_width: float,
                 sampling_rate: float) -> torch.Tensor:
    """A radially symmetric [taps, taps] low-pass: the ideal disc-shaped pass band's impulse
    response, fc J1(2 pi fc r) / r (a "jinc"; pi fc^2 at r = 0), sampled at the filter's
    positions r (in units: tap offsets / sampling_rate), windowed by the outer product of the
    1-D Kaiser window used for `kaiser_lowpass`, normalised to unit DC gain.

    A disc, unlike the square pass band of a separable filter, treats all directions alike,
    which is what rotation equivariance needs.
    """
    offsets = (torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2.0) / sampling_rate
    radius = torch.hypot(offsets[:, None], offsets[None, :])
    argument = 2.0 * math.pi * cutoff * radius
    safe_radius = torch.where(radius > 0, radius, torch.ones_like(radius))
    ideal = torch.where(radius > 0, cutoff * torch.special.bessel_j1(argument) / safe_radius,
                        torch.full_like(radius, math.pi * cutoff**2))
    window = _kaiser_window(taps, _kaiser_beta(taps, half_width, sampling_rate))
    kernel = ideal * torch.outer(window, window)
    return (kernel / kernel.sum()).float()


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class SG3LayerSpec:
    """One synthesis layer's plain attributes: what a checkpoint does not hold as tensors.

    Frequencies are in cycles per unit and sampling rates in samples per unit, where the
    final image is one unit wide. NVlabs pickles store all of these on the layer object (its
    `in_size`/`out_size` as [width, height] pairs; ours are square, so one int).
    """

    idx: int  # position in the stack: the layer is called L{idx}_{out_size}_{out_channels}
    in_channels: int
    out_channels: int
    in_size: int  # samples per side of the input feature map, margins included
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    tmp_sampling_rate: int  # the rate the non-linearity runs at (2x the larger one, or 1x)
    in_cutoff: float  # band limit of the incoming signal
    out_cutoff: float  # band limit this layer filters its output to
    in_half_width: float  # half the transition band of the up-sampling filter
    out_half_width: float  # half the transition band of the down-sampling filter
    conv_kernel: int  # 3 (T) or 1 (R, and every ToRGB)
    up_factor: int  # tmp_sampling_rate / in_sampling_rate
    down_factor: int  # tmp_sampling_rate / out_sampling_rate
    up_taps: int  # length of the 1-D up filter; 1: no filter (and no `up_filter` buffer)
    down_taps: int  # length (per axis) of the down filter; 1: none
    down_radial: bool  # [taps, taps] jinc down filter instead of a separable 1-D one (R)
    padding: tuple[int, int, int, int]  # [x_before, x_after, y_before, y_after] at up-sampling
    is_torgb: bool  # the last layer: 1x1, no demodulation, linear, no resampling
    is_critically_sampled: bool  # no margin, cutoff at half the sampling rate
    use_fp16: bool  # NVlabs runs it in half precision on GPUs; recorded, we run the input dtype
    conv_clamp: float | None  # activations clamped to +-this after the non-linearity

    @property
    def name(self) -> str:
        """The module name NVlabs' state dicts use, e.g. L3_52_512."""
        return f"L{self.idx}_{self.out_size}_{self.out_channels}"


@dataclass(frozen=True)
class SG3Config:
    """A StyleGAN3 generator's shape: the mapping, the Fourier-feature input, and the layers.

    `layers` holds num_layers + 1 specs (the last is ToRGB). The scalar fields describe the
    design the layers were made from; the layers themselves are what the network runs.
    """

    z_dim: int
    w_dim: int
    c_dim: int  # classes of a conditional model; 0: unconditional
    img_resolution: int
    img_channels: int
    mapping_layers: int  # 2 in NVlabs' stylegan3-t/r configs
    mapping_features: int  # width of the hidden mapping layers
    lr_mul: float  # mapping learning-rate multiplier: its weights are stored divided by it
    channel_base: int  # feature maps are min(round(channel_base / (2 cutoff)), channel_max)
    channel_max: int
    num_layers: int  # synthesis layers before ToRGB (14)
    num_critical: int  # how many of the last layers are critically sampled (2)
    margin_size: int  # extra samples on every side of non-critical feature maps (10)
    output_scale: float  # the image is multiplied by this (0.25)
    conv_kernel: int  # 3 for T, 1 for R
    use_radial_filters: bool  # R: radial down filters on non-critical layers
    input_size: int  # samples per side of the Fourier-feature grid, margins included
    input_sampling_rate: float
    input_bandwidth: float  # the input features' band limit (the first cutoff, 2)
    layers: tuple[SG3LayerSpec, ...]

    @property
    def num_ws(self) -> int:
        """One w for the input, one per layer."""
        return len(self.layers) + 1

    @property
    def input_channels(self) -> int:
        return self.layers[0].in_channels

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def mapping_config(self) -> SG2Config:
        """The StyleGAN2 config whose mapping network is this one's (same keys, same maths)."""
        return SG2Config(z_dim=self.z_dim, w_dim=self.w_dim, c_dim=self.c_dim,
                         img_resolution=self.img_resolution, img_channels=self.img_channels,
                         mapping_layers=self.mapping_layers,
                         mapping_features=self.mapping_features, lr_mul=self.lr_mul)


def _rate_for(stopband: float, img_resolution: int) -> int:
    """The smallest power of two at least twice the stopband (so everything past it folds
    back beyond the stopband), at most the image resolution. A stopband that lands on a
    power of two within float rounding needs no higher rate."""
    exponent = math.ceil(math.log2(2.0 * stopband) - 1e-9)
    return min(2 ** exponent, img_resolution)


def _layer_padding(in_size: int, out_size: int, conv_kernel: int, up: int, down: int,
                   up_taps: int, down_taps: int) -> tuple[int, int, int, int]:
    """The up-sampling padding that keeps every grid centred on the canvas.

    The full convolution (padding conv_kernel - 1) gives conv_size = in_size + k - 1 samples,
    still centred at the input rate. After zero insertion, input sample m sits at index
    up * m; a valid FIR of T taps centres output t on padded index t + (T - 1) / 2. Asking
    output sample o of the whole chain (up filter, down filter, decimation by `down`) to sit
    where a centred out_size grid puts it gives

        before = (up_taps + down_taps - 2 + up - down + down * out_size - up * conv_size) / 2

    (floored when odd, half a sample early), and `after` is whatever leaves exactly
    down * (out_size - 1) + 1 samples for the decimation.
    """
    conv_size = in_size + conv_kernel - 1
    before = (up_taps + down_taps - 2 + up - down + down * out_size - up * conv_size) // 2
    after = down * (out_size - 1) + 1 + up_taps + down_taps - 2 - up * conv_size - before
    return (before, after, before, after)


def design(z_dim: int = 512, w_dim: int = 512, img_resolution: int = 1024, config: str = "t", *,
           channel_base: int | None = None, channel_max: int | None = None, c_dim: int = 0,
           img_channels: int = 3, mapping_layers: int = 2, mapping_features: int | None = None,
           lr_mul: float = 0.01, num_layers: int = 14, num_critical: int = 2,
           margin_size: int = 10, output_scale: float = 0.25, first_cutoff: float = 2.0,
           first_stopband: float = 2.0**2.1, last_stopband_rel: float = 2.0**0.3,
           filter_size: int = 6, lrelu_upsampling: int = 2, conv_clamp: float | None = 256.0,
           num_fp16_res: int = 4) -> SG3Config:
    """The paper's layer schedule for a T or R generator.

    Layer i = 0 .. N (N = num_layers; layer N is ToRGB) works at schedule point i; the input
    works at point 0. With e_i = min(i / (N - num_critical), 1):

    * cutoff f_c,i = first_cutoff * (img_resolution / 2 / first_cutoff) ** e_i: geometric from
      2 cycles per image to the output's Nyquist limit, reached num_critical layers early;
    * stopband f_t,i = first_stopband * (f_c,N * last_stopband_rel / first_stopband) ** e_i:
      from 2^2.1 to 2^0.3 above the last cutoff, growing slower than the cutoff;
    * sampling rate s_i = the smallest power of two >= 2 f_t,i, at most img_resolution;
    * half-width f_h,i = max(s_i / 2, f_t,i) - f_c,i (use all the room below the stopband);
    * size = s_i + 2 margin_size, except the last num_critical layers (critically sampled),
      whose size is the image's;
    * channels = min(round(channel_base / (2 f_c,i)), channel_max); ToRGB: img_channels.

    A layer runs its non-linearity at tmp = 2 max(s_in, s_out) (ToRGB: no oversampling), so
    it up-samples by 4 where the rate doubles and by 2 elsewhere, and down-samples by 2; filters
    have filter_size taps per unit of factor. Up filters cut at the incoming cutoff, down
    filters at the layer's own; R's non-critical down filters are radial.

    `channel_base`/`channel_max` default to the paper's: 32768/512 for T, 65536/1024 for R.
    `use_fp16` marks layers whose larger rate exceeds img_resolution / 2^num_fp16_res.
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, not {config!r}")
    radial = config == "r"
    channel_base = channel_base or (65536 if radial else 32768)
    channel_max = channel_max or (1024 if radial else 512)
    kernel = 1 if radial else 3
    last = num_layers
    nyquist = img_resolution / 2.0
    cutoffs, stopbands, rates, half_widths, sizes, channels = [], [], [], [], [], []
    for i in range(last + 1):
        exponent = min(i / (last - num_critical), 1.0)
        cutoff = first_cutoff * (nyquist / first_cutoff) ** exponent
        stopband = first_stopband * (nyquist * last_stopband_rel / first_stopband) ** exponent
        rate = _rate_for(stopband, img_resolution)
        critical = i > last - num_critical
        cutoffs.append(cutoff)
        stopbands.append(stopband)
        rates.append(rate)
        half_widths.append(max(rate / 2.0, stopband) - cutoff)
        sizes.append(rate if critical else rate + 2 * margin_size)
        channels.append(img_channels if i == last
                        else min(round(channel_base / (2.0 * cutoff)), channel_max))

    layers = []
    for i in range(last + 1):
        previous = max(i - 1, 0)  # layer 0 reads the input, which sits at point 0
        is_torgb = i == last
        critical = i > last - num_critical
        tmp_rate = max(rates[previous], rates[i]) * (1 if is_torgb else lrelu_upsampling)
        up, down = tmp_rate // rates[previous], tmp_rate // rates[i]
        up_taps = filter_size * up if up > 1 and not is_torgb else 1
        down_taps = filter_size * down if down > 1 and not is_torgb else 1
        conv_kernel = 1 if is_torgb else kernel
        in_size = sizes[previous] if i > 0 else rates[0] + 2 * margin_size
        layers.append(SG3LayerSpec(
            idx=i, in_channels=channels[previous] if i > 0 else channels[0],
            out_channels=channels[i], in_size=in_size, out_size=sizes[i],
            in_sampling_rate=rates[previous], out_sampling_rate=rates[i],
            tmp_sampling_rate=tmp_rate, in_cutoff=cutoffs[previous], out_cutoff=cutoffs[i],
            in_half_width=half_widths[previous], out_half_width=half_widths[i],
            conv_kernel=conv_kernel, up_factor=up, down_factor=down, up_taps=up_taps,
            down_taps=down_taps, down_radial=radial and not critical and down_taps > 1,
            padding=_layer_padding(in_size, sizes[i], conv_kernel, up, down, up_taps, down_taps),
            is_torgb=is_torgb, is_critically_sampled=critical,
            use_fp16=max(rates[previous], rates[i]) * 2**num_fp16_res > img_resolution,
            conv_clamp=conv_clamp))
    return SG3Config(
        z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, img_resolution=img_resolution,
        img_channels=img_channels, mapping_layers=mapping_layers,
        mapping_features=mapping_features or w_dim, lr_mul=lr_mul, channel_base=channel_base,
        channel_max=channel_max, num_layers=num_layers, num_critical=num_critical,
        margin_size=margin_size, output_scale=output_scale, conv_kernel=kernel,
        use_radial_filters=radial, input_size=rates[0] + 2 * margin_size,
        input_sampling_rate=float(rates[0]), input_bandwidth=cutoffs[0], layers=tuple(layers))


# -- the network ---------------------------------------------------------------------------


class SynthesisInput(nn.Module):
    """Fourier features, placed on the canvas by a style and by the performer's camera.

    Channel c is a plane wave sin(2 pi (f_c . q + phi_c)) of the stored frequency f_c (cycles
    per unit) and phase phi_c (cycles), evaluated at feature coordinates q = A p of each grid
    position p (see the module docstring for the grid). A = S @ `transform`:

    * `transform` (a buffer, identity by default) maps image coordinates to scene
      coordinates: it is the inverse of how the scene should move, i.e. the camera. A
      translation by +d in it shows what sat at p + d at p, so the picture moves by -d.
    * S comes from the style: affine(w) = (a, b, tx, ty) is divided by |(a, b)|, so that
      (cos, sin) = (a, b) / |(a, b)| is a pure rotation and the translation is measured in
      the same normalised units; S = [[cos, -sin, tx], [sin, cos, ty], [0, 0, 1]]. The affine
      starts at weight 0, bias (1, 0, 0, 0): the identity.

    Because the waves are analytic, the transform is applied to them instead of to the grid:
    f . (M p + t) = (M^T f) . p + f . t, so each sample gets rotated frequencies and shifted
    phases. A zooming camera can push frequencies past what the grid holds, so amplitudes fade
    linearly from 1 at the bandwidth to 0 at half the sampling rate:
    amplitude = clamp(1 - (|f'| - bandwidth) / (sampling_rate / 2 - bandwidth), 0, 1).

    Finally the channels are mixed by a learned matrix: x @ (weight / sqrt(channels))^T.
    """

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float,
                 bandwidth: float) -> None:
        super().__init__()
        self.size, self.sampling_rate, self.bandwidth = size, sampling_rate, bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = FullyConnected(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        # random frequencies spread evenly over the disc of radius `bandwidth`
        angle = torch.rand(channels) * (2.0 * math.pi)
        radius = bandwidth * torch.rand(channels).sqrt()
        directions = torch.stack([angle.cos(), angle.sin()], dim=1)
        self.register_buffer("freqs", directions * radius[:, None])
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)
        style = style / style[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = style.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        rigid = torch.stack([cos, -sin, tx, sin, cos, ty, zero, zero, one], dim=1).view(-1, 3, 3)
        matrix = rigid @ self.transform.to(w.dtype)  # image coordinates -> feature coordinates
        freqs = self.freqs.to(w.dtype) @ matrix[:, :2, :2]  # [B, C, 2]: rows are (M^T f)^T
        phases = self.phases.to(w.dtype) + (self.freqs.to(w.dtype) @ matrix[:, :2, 2:])[..., 0]
        amplitude = 1.0 - (freqs.norm(dim=2) - self.bandwidth) / (
            self.sampling_rate / 2.0 - self.bandwidth)
        amplitude = amplitude.clamp(0.0, 1.0)
        grid = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5
                - self.size / 2.0) / self.sampling_rate
        # [B, C, H, W]: x varies along the width, y along the height
        cycles = (freqs[..., 0, None, None] * grid[None, None, None, :]
                  + freqs[..., 1, None, None] * grid[None, None, :, None]
                  + phases[..., None, None])
        features = torch.sin(cycles * (2.0 * math.pi)) * amplitude[..., None, None]
        mix = self.weight / math.sqrt(self.weight.shape[1])
        return F.conv2d(features, mix[:, :, None, None].to(w.dtype))


class SynthesisLayer(nn.Module):
    """A modulated convolution followed by the filtered leaky ReLU.

    Modulation: styles = affine(w). Demodulating layers (all but ToRGB) first scale the
    weight to unit RMS per output channel and the styles to unit RMS, which keeps half
    precision from overflowing and changes nothing else (demodulation removes the scale);
    then the styles times the input gain 1 / sqrt(magnitude_ema) modulate the input channels,
    and each output channel is divided by sqrt(sum (weight * style)^2 + 1e-8). ToRGB scales
    the styles by 1 / sqrt(in_channels * k * k) instead and does not demodulate. As in our
    StyleGAN2 the styles scale the activations (scale in, shared-weight conv, scale out),
    which equals per-sample weights and keeps the conv weights static. The convolution is
    "full" (padding k - 1), so it keeps every grid centred.

    Filtered leaky ReLU: up-sample by up_factor with up_filter (gain up_factor^2), add the
    bias, leaky ReLU(0.2) * sqrt(2) (ToRGB: linear, gain 1), clamp to +-conv_clamp, then
    down-sample by down_factor with down_filter; `padding` is applied at the up-sampling.
    """

    def __init__(self, spec: SG3LayerSpec, w_dim: int) -> None:
        super().__init__()
        self.spec = spec
        k = spec.conv_kernel
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones(()))
        up_filter = (kaiser_lowpass(spec.up_taps, spec.in_cutoff, spec.in_half_width,
                                    spec.tmp_sampling_rate) if spec.up_taps > 1 else None)
        design_down = jinc_lowpass if spec.down_radial else kaiser_lowpass
        down_filter = (design_down(spec.down_taps, spec.out_cutoff, spec.out_half_width,
                                   spec.tmp_sampling_rate) if spec.down_taps > 1 else None)
        # a None buffer is left out of the state dict, as NVlabs' files leave it out
        self.register_buffer("up_filter", up_filter)
        self.register_buffer("down_filter", down_filter)
        # on a GPU: (filter, its version, (columns, rows)) by (filter name, dtype)
        self._bands: dict[tuple[str, torch.dtype], tuple[torch.Tensor, int, tuple[Band, Band]]] = {}

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        styles = self.affine(w)
        weight = self.weight.to(x.dtype)
        input_gain = self.magnitude_ema.to(x.dtype).rsqrt()
        if spec.is_torgb:
            in_channels, k = weight.shape[1], weight.shape[2]
            styles = styles * (input_gain / math.sqrt(in_channels * k * k))
            x = F.conv2d(x * styles[:, :, None, None], weight, padding=k - 1)
        else:
            weight = weight * weight.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
            styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt() * input_gain
            demod = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + DEMOD_EPS).rsqrt()
            x = F.conv2d(x * styles[:, :, None, None], weight, padding=weight.shape[2] - 1)
            x = x * demod[:, :, None, None]
        return self._filtered_lrelu(x)

    def _filtered_lrelu(self, x: torch.Tensor) -> torch.Tensor:
        """Leaky ReLU commutes with a positive gain, so sqrt(2) rides along with the
        up-sampling gain and the bias. The bias, the activation and the clamp run in place on
        the up-sampled tensor (this layer's own, fresh from the convolution): allocating the
        largest tensors of the frame anew cost more than the arithmetic on them."""
        spec = self.spec
        up = spec.up_factor
        gain = 1.0 if spec.is_torgb else LRELU_GAIN
        x = self._upfirdn(x, "up_filter", up, 1, spec.padding, up * up * gain)
        x.add_((self.bias.to(x.dtype) * gain)[None, :, None, None])
        if not spec.is_torgb:
            F.leaky_relu_(x, LRELU_SLOPE)
        if spec.conv_clamp is not None:
            x.clamp_(-spec.conv_clamp, spec.conv_clamp)
        return self._upfirdn(x, "down_filter", 1, spec.down_factor, (0, 0, 0, 0), 1.0)

    def _upfirdn(self, x: torch.Tensor, name: str, up: int, down: int,
                 padding: tuple[int, int, int, int], gain: float) -> torch.Tensor:
        """upfirdn2d with the filter buffer `name`. On a GPU a separable filter runs as two
        `Band`s, designed once per filter and dtype (a loaded checkpoint's filter, copied
        into the buffer, bumps its version and so gets new bands)."""
        f = getattr(self, name)
        if x.device.type != "cuda" or f is None or f.ndim == 2:
            return upfirdn2d(x, f, up=up, down=down, padding=padding, gain=gain)
        cached = self._bands.get((name, x.dtype))
        if cached is None or cached[0] is not f or cached[1] != f._version:
            x_before, x_after, y_before, y_after = padding
            root = math.sqrt(gain)
            bands = (Band.design(f, up, down, x_before, x_after, root).to(x.dtype),
                     Band.design(f, up, down, y_before, y_after, root).to(x.dtype))
            cached = self._bands[(name, x.dtype)] = (f, f._version, bands)
        columns, rows = cached[2]
        return rows.along(columns.along(x, 3), 2)


class Synthesis(nn.Module):
    """ws [B, num_ws, w_dim] to an image: the input, then the layers under their NVlabs
    names (`L0_36_512` ...), then the output scale."""

    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        self.config = config
        self.input = SynthesisInput(config.w_dim, config.input_channels, config.input_size,
                                    config.input_sampling_rate, config.input_bandwidth)
        for spec in config.layers:
            setattr(self, spec.name, SynthesisLayer(spec, config.w_dim))

    def forward(self, ws: torch.Tensor, noise: Noise = IGNORED_NOISE) -> torch.Tensor:
        """`noise` is ignored: StyleGAN3 has no noise inputs (accepted for SG2's signature).

        On the CPU the feature maps run channel-last (NHWC): oneDNN's depthwise filters are
        about 4x faster that way. On a GPU they stay NCHW, so each row is a run of samples
        for the `Band` products. The image comes back in the usual layout."""
        x = self.input(ws[:, 0])
        if x.device.type != "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        for i, spec in enumerate(self.config.layers):
            x = getattr(self, spec.name)(x, ws[:, i + 1])
        return (x * self.config.output_scale).contiguous()


class SG3Generator(nn.Module):
    """mapping + synthesis under NVlabs' names, so their state dicts load as they are."""

    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        self.config = config
        self.mapping = Mapping(config.mapping_config())
        self.synthesis = Synthesis(config)

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None,
                truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, c)
        w = self.mapping.w_avg.to(w.dtype).lerp(w, truncation)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))

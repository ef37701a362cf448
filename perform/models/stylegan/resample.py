"""upfirdn: up-sample, FIR-filter and down-sample feature maps, channel by channel, the
operation under StyleGAN3's filtered leaky ReLU.

`upfirdn2d` is the definition's straight form: depthwise convolutions, which oneDNN runs
well on the CPU. cuDNN runs such long, thin kernels slowly: a StyleGAN3-T at 512 px drew 4
frames a second on an H200 that way. On a GPU a separable pass is therefore a `Band`: every
block of output samples depends on one window of input samples through the same small
matrix, so a whole pass is one matrix product (about six times the multiplications of the
taps alone, counting the band's zeros), which a GPU does far faster: 24 frames a second.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BLOCK = 32  # input samples (times `down`) per block of a band: wider wastes more on zeros


def _window(length: int, up: int, taps: int, before: int, after: int) -> tuple[int, int]:
    """Where the padded valid convolution sits in the full one, along one axis.

    Zero insertion gives up * length samples, padding adds before + after, and a valid
    convolution with `taps` taps keeps up * length + before + after - taps + 1 of them. Its
    sample t is sample t + start of the full convolution of the zero-inserted signal, with
    start = taps - 1 - before. Returns (start, count).
    """
    return taps - 1 - before, up * length + before + after - taps + 1


def _resample(x: torch.Tensor, kernel: torch.Tensor, up: tuple[int, int], down: tuple[int, int],
              padding: tuple[int, int, int, int]) -> torch.Tensor:
    """upfirdn of every channel with one [kh, kw] kernel; `up`/`down` per axis (rows, columns).

    Runs as a grouped (depthwise) convolution: one group per channel, so oneDNN vectorises
    over channels, which is about 15x faster on the CPU than folding channels into the batch
    (measured on channel-last tensors). Zero insertion followed by a full convolution is
    exactly a transposed convolution with stride `up`, which never multiplies the inserted
    zeros; the padded valid convolution is then a window of it. Without up-sampling, a
    strided convolution computes only the samples that decimation keeps.
    """
    channels = x.shape[1]
    weight = kernel[None, None].expand(channels, 1, -1, -1)
    x_before, x_after, y_before, y_after = padding
    if up == (1, 1):
        if any(padding):
            x = F.pad(x, padding)
        # conv2d correlates; the flipped kernel makes it the convolution the definition asks
        return F.conv2d(x, weight.flip(2, 3), stride=down, groups=channels)
    row_start, rows = _window(x.shape[2], up[0], kernel.shape[0], y_before, y_after)
    column_start, columns = _window(x.shape[3], up[1], kernel.shape[1], x_before, x_after)
    full = F.conv_transpose2d(x, weight, stride=up, groups=channels)
    row_end_pad = row_start + rows - full.shape[2]
    column_end_pad = column_start + columns - full.shape[3]
    if min(row_start, column_start) >= 0 and max(row_end_pad, column_end_pad) <= 0:
        full = full[:, :, row_start:row_start + rows, column_start:column_start + columns]
    else:  # the padding reaches past the full convolution: zero-extend where it does
        full = F.pad(full, (-column_start, column_end_pad, -row_start, row_end_pad))
    return full[:, :, ::down[0], ::down[1]]


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: tuple[int, int, int, int] | list[int] = (0, 0, 0, 0),
              gain: float = 1.0) -> torch.Tensor:
    """Up-sample, FIR-filter and down-sample a [B, C, H, W] batch, channel by channel.

    By definition, per axis: insert `up - 1` zeros after every sample (length up * L), pad
    with `padding` = [x_before, x_after, y_before, y_after] zeros (negative: crop), convolve
    with the filter keeping only the fully overlapping ("valid") samples, and keep every
    `down`-th sample starting with the first. `f` is a 1-D filter applied on both axes
    (separable: two passes), a [taps, taps] 2-D filter, or None for no filtering. `gain`
    scales the result; zero insertion loses a factor `up` per axis, so up-sampling passes
    `up ** 2`. With no filter, no up-sampling and no padding the result may be `x` itself
    (or a view of it): copy before writing into it.
    """
    x_before, x_after, y_before, y_after = (int(p) for p in padding)
    if f is None and up == 1:  # nothing to filter: only pad (or return x itself) and decimate
        x = F.pad(x, (x_before, x_after, y_before, y_after)) if any(padding) else x
        return x[:, :, ::down, ::down]
    if f is None:
        f = x.new_ones(1)
    f = f.to(x.dtype)
    if f.ndim == 2:
        return _resample(x, f * gain, (up, up), (down, down),
                         (x_before, x_after, y_before, y_after))
    taps = f * math.sqrt(gain)
    x = _resample(x, taps[None, :], (1, up), (1, down), (x_before, x_after, 0, 0))
    return _resample(x, taps[:, None], (up, 1), (down, 1), (0, 0, y_before, y_after))




@dataclass(frozen=True)
class Band:
    """One axis of upfirdn as a block matrix: output block j (`outputs` samples) is input
    samples [start + j * step, ...) times a matrix, the same for every block.

    With zero insertion, padding `before`, taps f[0..taps) and decimation, output m is
    sum_i x[i] f[m * down + taps - 1 - before - up * i]; moving m by up * BLOCK moves i by
    down * BLOCK and leaves every coefficient as it was, hence one matrix for all blocks.
    A block's window spans `spans` steps of input; `shares` [step, spans * outputs] holds
    each step's slice of the matrix side by side, so a pass reads its input in place: one
    product gives every step's share to every block, and each block sums its shares.
    """

    shares: torch.Tensor
    start: int
    step: int
    spans: int
    up: int
    down: int
    padding: int  # before + after
    taps: int

    @classmethod
    def design(cls, f: torch.Tensor, up: int, down: int, before: int, after: int,
               gain: float = 1.0) -> Band:
        taps = f.shape[0]
        step, outputs = down * BLOCK, up * BLOCK
        start = -(before // up)  # the first input sample output 0 reaches, rounded up
        # the last input sample the block's last output reaches, less one step
        last = (taps - 1 - before - down) // up
        window = step + last - start + 1
        spans = -(-window // step)
        rows = torch.arange(spans * step, device=f.device)[:, None]
        columns = torch.arange(outputs, device=f.device)[None, :]
        index = columns * down + (taps - 1 - before - up * start) - up * rows
        inside = (index >= 0) & (index < taps)
        matrix = torch.where(inside, f[index.clamp(0, taps - 1)] * gain, 0.0)
        shares = matrix.view(spans, step, outputs).transpose(0, 1).reshape(step, -1)
        return cls(shares, start, step, spans, up, down, before + after, taps)

    def to(self, dtype: torch.dtype) -> Band:
        return dataclasses.replace(self, shares=self.shares.to(dtype))

    def length(self, samples: int) -> int:
        """Output samples for `samples` input samples."""
        return (self.up * samples + self.padding - self.taps) // self.down + 1

    def along(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """This pass along `dim` (2: rows, 3: columns) of a [B, C, H, W] batch."""
        samples = x.shape[dim]
        length = self.length(samples)
        outputs = self.up * BLOCK
        blocks = -(-length // outputs)
        steps = blocks + self.spans - 1
        padding = (-self.start, self.start + steps * self.step - samples)
        b, c = x.shape[:2]
        if dim == 3:
            x = F.pad(x, padding).reshape(-1, self.step)  # a row per step of every image row
            out = (x @ self.shares).view(-1, steps, self.spans, outputs)
        else:
            x = F.pad(x, (0, 0, *padding))
            columns = x.shape[3]
            out = self.shares.t() @ x.reshape(-1, self.step, columns)
            out = out.view(-1, steps, self.spans, outputs, columns)
        total = out[:, :blocks, 0]
        for span in range(1, self.spans):
            total = total + out[:, span:span + blocks, span]
        if dim == 3:
            return total.reshape(b, c, -1, blocks * outputs)[..., :length]
        return total.reshape(b, c, blocks * outputs, -1)[:, :, :length]

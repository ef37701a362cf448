"""The CUDA fast path: recorded graphs, half precision and the pinned readback.

Skipped where torch sees no CUDA device (CI, and this project's usual machines); run on a
GPU machine with `tools/gpu_check.sh`, which also times the fast path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from small_gans import save_nvlabs, tiny, tiny3

from perform.core.readback import Readback
from perform.models.graphs import SETTLE
from perform.models.stylegan.model import StyleGAN, StyleGANMorph, load_stylegan
from perform.models.stylegan.sg3 import SG3Generator, SynthesisLayer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")
# Graphed against eager: half an 8-bit level. cuDNN's convolutions run in TF32 (PyTorch's
# default), and a capture may pick another algorithm, which rounds differently (measured on
# an H200: 3e-4 at worst).
HALF_A_LEVEL = 1 / 510


def pair(path: Path, **config: object) -> tuple[StyleGAN, StyleGAN]:
    """One checkpoint loaded twice on the GPU: through graphs, and always eagerly."""
    save_nvlabs(tiny(**config), path)
    graphed = load_stylegan(path, 40, 24, CUDA, "fp32")
    eager = load_stylegan(path, 40, 24, CUDA, "fp32")
    eager._picture.enabled = False
    return graphed, eager


def test_a_replayed_graph_draws_what_the_eager_model_draws(tmp_path: Path) -> None:
    graphed, eager = pair(tmp_path / "g.pkl")
    z = torch.randn(24, device=CUDA)
    for i in range(SETTLE + 4):  # eager until settled, then replays
        controls = {"psi": 0.5 + 0.05 * i, "noise": "animated", "noise_phase": 0.1 * i,
                    "noise_strength": 1.0 + 0.1 * i}
        torch.testing.assert_close(graphed(z * (1 + i), **controls),
                                   eager(z * (1 + i), **controls), rtol=0, atol=HALF_A_LEVEL)
    assert graphed._picture.replays == 4 + 1  # the recording call replays too
    for _ in range(SETTLE):
        image = graphed(z, noise="random")
    assert not torch.equal(image, graphed(z, noise="random"))  # fresh noise each replay


def test_a_graph_sees_a_morph_fader_move(tmp_path: Path) -> None:
    save_nvlabs(tiny(seed=1), tmp_path / "a.pkl")
    save_nvlabs(tiny(seed=2), tmp_path / "b.pkl")
    a, b = (load_stylegan(tmp_path / f"{n}.pkl", 40, 24, CUDA, "fp32") for n in "ab")
    morph = StyleGANMorph(a, b)
    z = torch.randn(24, device=CUDA)
    for _ in range(SETTLE + 1):
        morph(z, mix=0.0)
    assert morph._picture.replays > 0
    torch.testing.assert_close(morph(z, mix=1.0), b(z), rtol=0, atol=HALF_A_LEVEL)


def test_a_stylegan3_camera_moves_through_a_graph() -> None:
    generator = tiny3().to(CUDA)
    assert isinstance(generator, SG3Generator)
    graphed = StyleGAN(generator, "g3", 32, 32, CUDA, "fp32")
    z = torch.randn(generator.config.z_dim, device=CUDA)
    still = [graphed(z) for _ in range(SETTLE + 1)][-1]
    moved = graphed(z, translate=(0.1, 0.0), rotate=10.0)
    assert graphed._picture.replays >= 2 and not torch.allclose(moved, still)
    graphed._picture.enabled = False
    torch.testing.assert_close(graphed(z, translate=(0.1, 0.0), rotate=10.0), moved,
                               rtol=0, atol=HALF_A_LEVEL)


def test_stylegan3_on_the_gpu_draws_what_it_draws_on_the_cpu() -> None:
    """The GPU filters through block matrices (`Band`), the CPU through convolutions."""
    generator = tiny3()
    z = torch.randn(2, generator.config.z_dim)
    on_cpu = generator(z)
    on_gpu = generator.to(CUDA)(z.to(CUDA)).cpu()
    assert all(layer._bands for layer in generator.synthesis.children()
               if isinstance(layer, SynthesisLayer) and not layer.spec.is_torgb)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=0, atol=2 * HALF_A_LEVEL)  # range -1..1


def test_fp16_on_the_gpu_draws_within_a_stated_tolerance_of_fp32(tmp_path: Path) -> None:
    """fp16 keeps 11 bits of mantissa: within a level of 255 on average, a few at worst."""
    save_nvlabs(tiny(resolution=64, conv_clamp=256.0, num_fp16_res=2), tmp_path / "g.pkl")
    exact = load_stylegan(tmp_path / "g.pkl", 64, 64, CUDA, "fp32")
    for precision in ("mixed", "fp16"):
        fast = load_stylegan(tmp_path / "g.pkl", 64, 64, CUDA, precision)
        for seed in range(SETTLE + 2):
            z = torch.randn(24, device=CUDA, generator=torch.Generator(CUDA).manual_seed(seed))
            difference = (exact(z, psi=0.7) - fast(z, psi=0.7)).abs()
            assert difference.mean() < 0.004 and difference.max() < 0.03, precision


def test_the_pinned_readback_gives_the_bytes_the_cpu_path_gives() -> None:
    readback = Readback()
    image = torch.rand(24, 40, 3, device=CUDA)
    for _ in range(2):  # the second frame reuses the pinned buffer
        frame = readback.rgb8(image, 40, 24)
        expected = readback.rgb8(image.cpu(), 40, 24)
        assert np.array_equal(frame, expected) and not frame.flags.writeable
        image = image.flip(0)


def test_outputs_other_sizes_are_scaled_on_the_gpu_like_on_the_cpu() -> None:
    from perform.core.fit import fit_array

    readback = Readback()
    image = torch.rand(48, 64, 3, device=CUDA).mul(0.2).add(torch.linspace(0, 0.8, 64,
                                                                            device=CUDA)[:, None])
    cpu = readback.rgb8(image, 64, 48)
    sizes = [(128, 72, "letterbox"), (100, 100, "crop"), (32, 40, "stretch")]
    scaled = readback.scaled(image, sizes)
    for size in sizes:
        assert scaled[size].shape == (size[1], size[0], 3) and not scaled[size].flags.writeable
        difference = np.abs(scaled[size].astype(int) - fit_array(cpu, *size).astype(int))
        assert difference.mean() < 3, size

"""StyleGAN3: the paper's layer schedule under NVlabs' names, tiny T and R generators, the
resampling against its definition, the camera transform, and state dicts that round-trip.

No real checkpoint can be had here, so every generator is small and random.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from small_gans import save_nvlabs, tiny3
from small_gans import tiny as tiny_sg2

from perform.models.host import ModelError, ModelHost
from perform.models.stylegan.checkpoints import convert, read_checkpoint
from perform.models.stylegan.model import load_stylegan
from perform.models.stylegan.resample import Band, upfirdn2d
from perform.models.stylegan.sg2 import Noise
from perform.models.stylegan.sg3 import (
    SG3Config,
    SG3Generator,
    design,
    jinc_lowpass,
    kaiser_lowpass,
)

NAMES_T = {
    1024: "L0_36_512 L1_36_512 L2_52_512 L3_52_512 L4_84_512 L5_148_512 L6_148_512 L7_276_323 "
          "L8_276_203 L9_532_128 L10_1044_81 L11_1044_51 L12_1044_32 L13_1024_32 L14_1024_3",
    512: "L0_36_512 L1_36_512 L2_52_512 L3_52_512 L4_84_512 L5_84_512 L6_148_512 L7_148_483 "
         "L8_276_323 L9_276_215 L10_532_144 L11_532_96 L12_532_64 L13_512_64 L14_512_3",
    256: "L0_36_512 L1_36_512 L2_36_512 L3_52_512 L4_52_512 L5_84_512 L6_84_512 L7_148_512 "
         "L8_148_512 L9_148_362 L10_276_256 L11_276_181 L12_276_128 L13_256_128 L14_256_3",
}
NAMES_R_1024 = ("L0_36_1024 L1_36_1024 L2_52_1024 L3_52_1024 L4_84_1024 L5_148_1024 "
                "L6_148_1024 L7_276_645 L8_276_406 L9_532_256 L10_1044_161 L11_1044_102 "
                "L12_1044_64 L13_1024_64 L14_1024_3")


def draw(generator: SG3Generator, seed: int = 1) -> torch.Tensor:
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z)


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def tiny_t() -> SG3Generator:
    return tiny3("t", 32)


@pytest.fixture(scope="module")
def tiny_r() -> SG3Generator:
    return tiny3("r", 64)


# -- the schedule --------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [256, 512, 1024])
def test_design_reproduces_the_t_layer_names(resolution: int) -> None:
    config = design(img_resolution=resolution, config="t", channel_base=32768, channel_max=512)
    assert config.layer_names == NAMES_T[resolution].split()
    assert config.num_ws == 16
    assert (config.input_size, config.input_sampling_rate, config.input_bandwidth) == (36, 16, 2)


def test_design_reproduces_the_r_layer_names() -> None:
    config = design(img_resolution=1024, config="r")  # the paper's 65536 / 1024 by default
    assert (config.channel_base, config.channel_max, config.conv_kernel) == (65536, 1024, 1)
    assert config.layer_names == NAMES_R_1024.split()


def test_design_factors_taps_and_sampling() -> None:
    layers = design(img_resolution=1024).layers
    rate_doubles = {layer.idx for layer in layers
                    if layer.out_sampling_rate == 2 * layer.in_sampling_rate}
    assert rate_doubles == {2, 4, 5, 7, 9, 10}
    for layer in layers[:-1]:
        assert layer.up_factor == (4 if layer.idx in rate_doubles else 2)
        assert layer.down_factor == 2
        assert (layer.up_taps, layer.down_taps) == (6 * layer.up_factor, 12)
        assert layer.conv_kernel == 3
    torgb = layers[-1]
    assert torgb.is_torgb and (torgb.up_factor, torgb.down_factor, torgb.conv_kernel) == (1, 1, 1)
    assert [layer.is_critically_sampled for layer in layers] == [False] * 13 + [True] * 2
    assert layers[0].in_cutoff == 2 and layers[12].out_cutoff == 512


# -- filters and resampling ----------------------------------------------------------------


def reference_upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int, down: int,
                        padding: tuple[int, int, int, int], gain: float) -> torch.Tensor:
    """The definition, literally: zero insertion, padding (negative crops), a valid
    convolution summed tap by tap, every `down`-th sample; in float64."""
    x = x.double()
    kernel = (torch.outer(f, f) if f.ndim == 1 else f).double() * gain
    n, c, h, w = x.shape
    inserted = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            inserted[:, :, i * up, j * up] = x[:, :, i, j]
    x0, x1, y0, y1 = padding
    padded = torch.zeros(n, c, h * up + y0 + y1, w * up + x0 + x1, dtype=torch.float64)
    for i in range(padded.shape[2]):
        for j in range(padded.shape[3]):
            si, sj = i - y0, j - x0
            if 0 <= si < h * up and 0 <= sj < w * up:
                padded[:, :, i, j] = inserted[:, :, si, sj]
    taps = kernel.shape[0]
    out_h, out_w = padded.shape[2] - taps + 1, padded.shape[3] - taps + 1
    filtered = torch.zeros(n, c, out_h, out_w, dtype=torch.float64)
    for i in range(out_h):
        for j in range(out_w):
            for a in range(taps):
                for b in range(taps):  # convolution: the kernel runs backwards over the input
                    filtered[:, :, i, j] += (kernel[taps - 1 - a, taps - 1 - b]
                                             * padded[:, :, i + a, j + b])
    return filtered[:, :, ::down, ::down]


RESAMPLINGS = pytest.mark.parametrize(("up", "down", "padding"), [
    (1, 1, (0, 0, 0, 0)),
    (1, 2, (2, 1, 1, 3)),
    (1, 4, (3, 3, -1, 2)),
    (2, 1, (3, 2, 3, 2)),
    (2, 2, (-2, 4, 1, -1)),
    (4, 1, (5, 4, 2, 6)),
    (4, 2, (6, -3, 4, 5)),
    (2, 1, (9, 8, 9, 8)),  # the paddings of StyleGAN3-T's layers
    (4, 1, (-6, -9, -6, -9)),
])


@pytest.mark.parametrize("two_d", [False, True], ids=["separable", "radial"])
@RESAMPLINGS
def test_upfirdn2d_matches_its_definition(up: int, down: int, padding: tuple[int, int, int, int],
                                          two_d: bool) -> None:
    generator = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(2, 3, 5, 6, generator=generator)
    f = torch.randn(4, 4, generator=generator) if two_d else torch.randn(5, generator=generator)
    got = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up)
    want = reference_upfirdn2d(x, f, up, down, padding, up * up)
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@RESAMPLINGS
@pytest.mark.parametrize("taps", [1, 5, 12, 40])  # 1 and 40: one and three spans
def test_banded_passes_match_the_definition(up: int, down: int,
                                            padding: tuple[int, int, int, int], taps: int) -> None:
    """The GPU's form of a separable upfirdn (one block matrix per axis) against the
    convolutions checked above, on enough samples for several blocks on either axis."""
    generator = torch.Generator().manual_seed(up * 10 + down + taps)
    x = torch.randn(2, 3, 90, 77, generator=generator)
    f = torch.randn(taps, generator=generator)
    x_before, x_after, y_before, y_after = padding
    columns = Band.design(f, up, down, x_before, x_after, gain=up)
    rows = Band.design(f, up, down, y_before, y_after, gain=up)
    got = rows.along(columns.along(x, 3), 2)
    want = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_upfirdn2d_without_a_filter_only_pads_and_decimates() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = upfirdn2d(x, None, padding=(1, -1, 0, 0))
    assert torch.equal(out, torch.nn.functional.pad(x, (1, -1)))


def response(kernel: torch.Tensor, frequency: float, sampling_rate: float) -> float:
    """|H(f)| of a symmetric 1-D filter."""
    offsets = torch.arange(kernel.shape[0], dtype=torch.float64) - (kernel.shape[0] - 1) / 2
    phase = 2 * math.pi * frequency / sampling_rate * offsets
    return abs(float((kernel.double() * torch.cos(phase)).sum()))


def test_designed_filters_pass_below_the_cutoff_and_stop_beyond_the_stopband() -> None:
    kernel = kaiser_lowpass(12, cutoff=8.0, half_width=8.0, sampling_rate=64.0)
    assert torch.allclose(kernel, kernel.flip(0)) and math.isclose(float(kernel.sum()), 1.0,
                                                                    rel_tol=1e-6)
    assert response(kernel, 2.0, 64.0) > 0.95
    assert 0.3 < response(kernel, 8.0, 64.0) < 0.7  # half amplitude around the cutoff
    assert response(kernel, 20.0, 64.0) < 0.05
    radial = jinc_lowpass(12, cutoff=8.0, half_width=8.0, sampling_rate=64.0)
    assert radial.shape == (12, 12) and math.isclose(float(radial.sum()), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(radial, radial.t())  # symmetric in both directions


# -- the generator -------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "resolution"), [("t", 32), ("r", 64)])
def test_tiny_generators_draw_images_that_depend_on_z(config: str, resolution: int) -> None:
    generator = tiny3(config, resolution)
    assert generator.num_ws == 16
    one, other = draw(generator, seed=1), draw(generator, seed=2)
    assert one.shape == (1, 3, resolution, resolution)
    assert torch.isfinite(one).all() and one.abs().max() > 0
    assert (one - other).abs().max() > 1e-3 * one.abs().max()


def test_synthesis_takes_a_noise_argument_and_ignores_it(tiny_t: SG3Generator) -> None:
    ws = torch.randn(2, tiny_t.num_ws, 32)
    with torch.no_grad():
        plain = tiny_t.synthesis(ws)
        noisy = tiny_t.synthesis(ws, noise=Noise(mode="random", strength=3.0))
    assert plain.shape == (2, 3, 32, 32)
    assert torch.equal(plain, noisy)


def test_state_dict_keys_follow_nvlabs_names(tiny_t: SG3Generator, tiny_r: SG3Generator) -> None:
    for generator in (tiny_t, tiny_r):
        config: SG3Config = generator.config
        state = generator.state_dict()
        channels = config.input_channels
        assert state["synthesis.input.weight"].shape == (channels, channels)
        assert state["synthesis.input.affine.weight"].shape == (4, config.w_dim)
        assert not state["synthesis.input.affine.weight"].any()
        assert state["synthesis.input.affine.bias"].tolist() == [1.0, 0.0, 0.0, 0.0]
        assert torch.equal(state["synthesis.input.transform"], torch.eye(3))
        assert state["synthesis.input.freqs"].shape == (channels, 2)
        assert state["synthesis.input.phases"].shape == (channels,)
        assert {key for key in state if key.startswith("mapping.")} == {
            "mapping.w_avg", "mapping.fc0.weight", "mapping.fc0.bias", "mapping.fc1.weight",
            "mapping.fc1.bias"}
        layers = sorted({key.split(".")[1] for key in state if key.startswith("synthesis.L")},
                        key=lambda name: int(name[1:].split("_")[0]))
        assert layers == config.layer_names and len(layers) == 15
        for spec in config.layers:
            assert re.fullmatch(rf"L{spec.idx}_{spec.out_size}_{spec.out_channels}", spec.name)
            prefix = f"synthesis.{spec.name}."
            k = spec.conv_kernel
            assert state[prefix + "weight"].shape == (spec.out_channels, spec.in_channels, k, k)
            assert state[prefix + "bias"].shape == (spec.out_channels,)
            assert state[prefix + "affine.weight"].shape == (spec.in_channels, config.w_dim)
            assert state[prefix + "affine.bias"].shape == (spec.in_channels,)
            assert state[prefix + "magnitude_ema"].shape == ()
            if spec.is_torgb:
                assert prefix + "up_filter" not in state and prefix + "down_filter" not in state
                continue
            assert state[prefix + "up_filter"].shape == (spec.up_taps,)
            radial = config.use_radial_filters and not spec.is_critically_sampled
            taps = spec.down_taps
            assert state[prefix + "down_filter"].shape == ((taps, taps) if radial else (taps,))


def test_conditional_mapping_has_the_embedding() -> None:
    generator = SG3Generator(design(32, 32, 32, channel_base=512, channel_max=32, c_dim=4))
    assert generator.state_dict()["mapping.embed.weight"].shape == (32, 4)
    with torch.no_grad():
        image = generator(torch.randn(1, 32), torch.eye(4)[:1])
    assert image.shape == (1, 3, 32, 32)


def test_state_dict_round_trip_reproduces_the_image(tiny_r: SG3Generator) -> None:
    torch.manual_seed(123)  # a different random init than the source
    copy = SG3Generator(tiny_r.config).eval()
    assert not torch.equal(draw(copy), draw(tiny_r))
    copy.load_state_dict(tiny_r.state_dict(), strict=True)
    assert torch.equal(draw(copy), draw(tiny_r))


# -- the camera ----------------------------------------------------------------------------


def with_transform(generator: SG3Generator, matrix: list[list[float]]) -> torch.Tensor:
    transform = generator.synthesis.input.transform
    saved = transform.clone()
    transform.copy_(torch.tensor(matrix))
    try:
        return draw(generator)
    finally:
        transform.copy_(saved)


@pytest.mark.parametrize("generator_name", ["tiny_t", "tiny_r"])
def test_camera_translation_shifts_the_image(generator_name: str,
                                             request: pytest.FixtureRequest) -> None:
    generator: SG3Generator = request.getfixturevalue(generator_name)
    resolution, pixels = generator.config.img_resolution, 2
    original = draw(generator)
    step = pixels / resolution  # the image is one unit wide
    right = with_transform(generator, [[1, 0, step], [0, 1, 0], [0, 0, 1]])
    down = with_transform(generator, [[1, 0, 0], [0, 1, step], [0, 0, 1]])
    # the camera moved by +step, so the picture moved by -step: new[x] = old[x + pixels]
    aligned_x = (right[..., :-pixels] - original[..., pixels:]).norm()
    aligned_y = (down[..., :-pixels, :] - original[..., pixels:, :]).norm()
    unaligned = (right - original).norm()
    assert correlation(right[..., :-pixels], original[..., pixels:]) > 0.99
    assert correlation(down[..., :-pixels, :], original[..., pixels:, :]) > 0.99
    assert aligned_x < 0.25 * unaligned and aligned_y < 0.25 * unaligned


def test_camera_rotation_changes_the_image(tiny_t: SG3Generator) -> None:
    original = draw(tiny_t)
    cos, sin = math.cos(math.radians(30)), math.sin(math.radians(30))
    rotated = with_transform(tiny_t, [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
    assert torch.isfinite(rotated).all()
    assert correlation(rotated, original) < 0.95
    assert torch.equal(draw(tiny_t), original)  # the identity camera is back


# -- from a checkpoint file ---------------------------------------------------------------


@pytest.mark.parametrize("config", ["t", "r"])
def test_an_nvlabs_stylegan3_pickle_and_its_conversion_draw_what_the_generator_draws(
        tmp_path: Path, config: str) -> None:
    generator = tiny3(config, 32 if config == "t" else 64)
    pickled = save_nvlabs(generator, tmp_path / "network-snapshot-000200.pkl")
    nvlabs = read_checkpoint(pickled)
    assert nvlabs.kind == "stylegan3" and nvlabs.config == generator.config
    convert(pickled, tmp_path / "g.safetensors")
    converted = read_checkpoint(tmp_path / "g.safetensors")
    assert converted.source == "perform" and converted.config == generator.config
    expected = draw(generator)
    for checkpoint in (nvlabs, converted):
        torch.testing.assert_close(draw(checkpoint.build()), expected, rtol=0, atol=1e-6)


def test_a_stylegan3_model_moves_its_camera_and_refuses_what_it_cannot_do(
        tmp_path: Path, tiny_t: SG3Generator) -> None:
    model = load_stylegan(save_nvlabs(tiny_t, tmp_path / "g.pkl"), 32, 32, torch.device("cpu"))
    assert repr(model).startswith("StyleGAN3 32px")
    z = torch.randn(32)
    still = model(z, psi=0.7)
    moved = model(z, psi=0.7, translate=(2 / 32, 0.0))
    torch.testing.assert_close(moved[:, 4:-6], still[:, 6:-4], atol=0.05, rtol=0)  # 2 px over
    assert not torch.allclose(model(z, psi=0.7, rotate=30.0), still, atol=0.05)
    torch.testing.assert_close(model(z, psi=0.7), still)  # back where it was


def test_stylegan3_models_have_directions_and_morph(tmp_path: Path, tiny_t: SG3Generator
                                                    ) -> None:
    a_path = save_nvlabs(tiny_t, tmp_path / "a.pkl")
    b = tiny3("t", 32, seed=3)
    b.load_state_dict(tiny_t.state_dict())
    with torch.no_grad():
        for tensor in b.parameters():
            tensor.add_(torch.randn_like(tensor) * 0.2)  # "fine-tuned" from a
    host = ModelHost(32, 32, torch.device("cpu"))
    model = host.get(str(a_path))
    layout = model.directions("coarse", k=2)
    assert layout.layers == (1, 2, 3)  # the input's affine is no style
    z = torch.randn(32)
    assert not torch.allclose(model(w=layout.apply(model.ws(z), [4.0])), model(z))
    pair = host.morph(str(a_path), str(save_nvlabs(b, tmp_path / "b.pkl")))
    torch.testing.assert_close(pair(z, mix=0.0), model(z))
    torch.testing.assert_close(pair(z, mix=1.0), host.get(str(tmp_path / "b.pkl"))(z))
    assert pair.morph.layer_mix(1.0, "coarse-a")["synthesis.L14_32_3.weight"] == 1.0
    with pytest.raises(ModelError, match="A is a StyleGAN3, B a StyleGAN2; nor can they "
                                         "crossfade from one z: A takes 32 numbers, B 24"):
        host.morph(str(a_path), str(save_nvlabs(tiny_sg2(), tmp_path / "sg2.pkl")))

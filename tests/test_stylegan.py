"""StyleGAN2: our generator's maths, the same weights read from every checkpoint layout, the
model as a patch plays it, and `perform convert`.

No real checkpoint can be downloaded here, so each test builds a small random generator and
files its weights the way NVlabs and rosinality tools do.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import wait_for
from PIL import Image
from small_gans import save_nvlabs, tiny

from perform.core.loader import PatchLoadError, load_patch
from perform.core.params import ParamStore
from perform.engine import Engine
from perform.models.host import ModelError, ModelHost
from perform.models.stylegan.checkpoints import CheckpointError, convert, read_checkpoint
from perform.models.stylegan.model import load_stylegan
from perform.models.stylegan.sg2 import Noise, SG2Generator, conv_up2, fir_filter

CPU = torch.device("cpu")


def image(generator: SG2Generator, seed: int = 1, c: torch.Tensor | None = None) -> torch.Tensor:
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z, c, truncation=0.7)


# -- the maths ---------------------------------------------------------------------------


def literal_up_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The up-sampling layer exactly as defined: zeros between samples, pad, FIR at gain 4,
    then the convolution without padding."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    p = weight.shape[-1] // 2
    up = F.pad(up, (p + 2, p + 1, p + 2, p + 1))
    fir = (fir_filter().to(x.dtype) * 4)[None, None].expand(c, 1, 4, 4)
    return F.conv2d(F.conv2d(up, fir, groups=c), weight)


@pytest.mark.parametrize("kernel", [1, 3])
def test_the_fast_up_sampling_conv_is_the_defined_one(kernel: int) -> None:
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    weight = torch.randn(4, 5, kernel, kernel, dtype=torch.float64)
    fast = conv_up2(x, weight, fir_filter().double())
    assert fast.shape == (2, 4, 12, 14)
    torch.testing.assert_close(fast, literal_up_conv(x, weight), rtol=0, atol=1e-12)


def test_modulation_on_activations_equals_per_sample_weights() -> None:
    """The paper modulates and demodulates the weights per sample; we scale activations in
    and out around one shared conv, which must be the same map."""
    layer = tiny().synthesis.b8.conv1.double()
    x, w = torch.randn(2, 48, 8, 8, dtype=torch.float64), torch.randn(2, 32, dtype=torch.float64)
    ours = layer(x, w, Noise("none"))
    styles = layer.affine(w)
    rows = []
    for i in range(2):
        weight = layer.weight * styles[i][None, :, None, None]
        weight = weight * (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()
        rows.append(F.conv2d(x[i:i + 1], weight, padding=1))
    reference = F.leaky_relu(torch.cat(rows) + layer.bias[None, :, None, None], 0.2)
    torch.testing.assert_close(ours, reference * math.sqrt(2), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("architecture", ["skip", "resnet", "orig"])
def test_every_architecture_draws_an_image_at_its_resolution(architecture: str) -> None:
    generator = tiny(architecture)
    drawn = image(generator)
    assert drawn.shape == (1, 3, 32, 32)
    assert drawn.std() > 0.05 and torch.isfinite(drawn).all()
    assert not torch.equal(drawn, image(generator, seed=2))  # the latent matters


def test_w_plus_layers_and_truncation_behave_as_the_paper_says() -> None:
    generator = tiny()
    z = torch.randn(1, 24)
    with torch.no_grad():
        w = generator.mapping(z)
        at_average = generator(z, truncation=0.0)
        same = generator.synthesis(generator.mapping.w_avg.expand(1, generator.num_ws, -1))
        torch.testing.assert_close(at_average, same)
        ws = w[:, None].expand(-1, generator.num_ws, -1).clone()
        fine_changed = ws.clone()
        fine_changed[:, -2:] = torch.randn(32)  # the last layers: colour, not layout
        a, b = generator.synthesis(ws), generator.synthesis(fine_changed)
    assert generator.num_ws == 8 and not torch.equal(a, b)
    coarse_a = F.avg_pool2d(a, 8)
    coarse_b = F.avg_pool2d(b, 8)
    assert (coarse_a - coarse_b).abs().mean() < (a - b).abs().mean()


# -- the layouts ---------------------------------------------------------------------------


def rosinality_layout(generator: SG2Generator) -> dict[str, torch.Tensor]:
    """Our weights under rosinality stylegan2-pytorch's names and shapes (its `g_ema`)."""
    s = generator.state_dict()
    g: dict[str, torch.Tensor] = {}
    for i in range(generator.config.mapping_layers):
        g[f"style.{i + 1}.weight"] = s[f"mapping.fc{i}.weight"]
        g[f"style.{i + 1}.bias"] = s[f"mapping.fc{i}.bias"]
    g["input.input"] = s["synthesis.b4.const"][None]

    def conv(prefix: str, ours: str) -> None:
        g[f"{prefix}.conv.weight"] = s[f"{ours}.weight"][None]
        g[f"{prefix}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        g[f"{prefix}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        g[f"{prefix}.noise.weight"] = s[f"{ours}.noise_strength"].reshape(1)
        g[f"{prefix}.activate.bias"] = s[f"{ours}.bias"]

    def rgb(prefix: str, ours: str) -> None:
        g[f"{prefix}.conv.weight"] = s[f"{ours}.weight"][None]
        g[f"{prefix}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        g[f"{prefix}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        g[f"{prefix}.bias"] = s[f"{ours}.bias"].reshape(1, -1, 1, 1)

    conv("conv1", "synthesis.b4.conv1")
    rgb("to_rgb1", "synthesis.b4.torgb")
    g["noises.noise_0"] = s["synthesis.b4.conv1.noise_const"][None, None]
    for k, res in enumerate(generator.config.resolutions[1:]):
        conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0")
        conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1")
        g[f"convs.{2 * k}.conv.blur.kernel"] = fir_filter() * 4
        rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
        g[f"to_rgbs.{k}.upsample.kernel"] = fir_filter() * 4
        g[f"noises.noise_{2 * k + 1}"] = s[f"synthesis.b{res}.conv0.noise_const"][None, None]
        g[f"noises.noise_{2 * k + 2}"] = s[f"synthesis.b{res}.conv1.noise_const"][None, None]
    return g


def save_rosinality(generator: SG2Generator, path: Path, with_average: bool = True) -> Path:
    data: dict[str, object] = {
        "g_ema": rosinality_layout(generator),
        "args": argparse.Namespace(size=generator.config.img_resolution, n_mlp=2,
                                   channel_multiplier=1, lr_mlp=0.01, latent=32)}
    if with_average:
        data["latent_avg"] = generator.mapping.w_avg.clone()
    torch.save(data, path)
    return path


def test_a_rosinality_checkpoint_draws_what_its_generator_draws(tmp_path: Path) -> None:
    generator = tiny()
    checkpoint = read_checkpoint(save_rosinality(generator, tmp_path / "g.pt"))
    assert checkpoint.source == "rosinality" and checkpoint.config == generator.config
    torch.testing.assert_close(image(checkpoint.build()), image(generator), rtol=0, atol=1e-6)


def test_a_rosinality_training_checkpoint_without_latent_avg_gets_an_estimated_one(
        tmp_path: Path) -> None:
    generator = tiny()
    checkpoint = read_checkpoint(save_rosinality(generator, tmp_path / "g.pt",
                                                 with_average=False))
    with torch.no_grad():
        mean = generator.mapping(torch.randn(4096, 24)).mean(dim=0)
    assert torch.allclose(checkpoint.state["mapping.w_avg"], mean, atol=0.1)


@pytest.mark.parametrize(("architecture", "c_dim"),
                         [("skip", 0), ("resnet", 0), ("orig", 0), ("skip", 5)])
@pytest.mark.parametrize("protocol", [2, 4])
def test_an_nvlabs_pickle_and_its_conversion_draw_what_the_generator_draws(
        tmp_path: Path, architecture: str, c_dim: int, protocol: int) -> None:
    generator = tiny(architecture, c_dim, conv_clamp=256.0)
    pickled = save_nvlabs(generator, tmp_path / "network-snapshot-000100.pkl", protocol)
    nvlabs = read_checkpoint(pickled)
    assert nvlabs.source == "nvlabs" and nvlabs.config == generator.config
    convert(pickled, tmp_path / "g.safetensors")
    converted = read_checkpoint(tmp_path / "g.safetensors")
    assert converted.source == "perform" and converted.config == generator.config
    c = F.one_hot(torch.tensor([3]), c_dim).float() if c_dim else None
    expected = image(generator, c=c)
    for checkpoint in (nvlabs, converted):
        torch.testing.assert_close(image(checkpoint.build(), c=c), expected, rtol=0, atol=1e-6)


def test_a_converted_checkpoint_draws_the_same_and_keeps_its_config(tmp_path: Path) -> None:
    generator = tiny()
    converted = convert(save_rosinality(generator, tmp_path / "g.pt"),
                        tmp_path / "g.safetensors")
    again = read_checkpoint(tmp_path / "g.safetensors")
    assert again.source == "perform" and again.config == generator.config == converted.config
    torch.testing.assert_close(image(again.build()), image(generator), rtol=0, atol=1e-6)


def test_a_hostile_pickle_fails_the_patch_that_loads_it_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker), protocol=4)
    (tmp_path / "evil.pkl").write_bytes(payload)
    patch = tmp_path / "show.py"
    patch.write_text("from perform import models\nmodel = models.load('evil.pkl')\n"
                     "def frame(ctx):\n    return model(None)\n")
    with pytest.raises(PatchLoadError) as refused:
        load_patch(patch, 1, ModelHost(32, 32, CPU))
    assert "refuses the global" in str(refused.value.error) and refused.value.error.line == 2
    assert not marker.exists()


class Payload:
    """What a hostile checkpoint would hold: a call to os.system when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("content", [b"", b"hello, not a model", b"\x80\x04garbage"])
def test_files_that_are_not_checkpoints_are_refused_with_their_name(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"broken\.pkl"):
        read_checkpoint(path)


def test_a_checkpoint_of_another_shape_is_refused_with_its_name(tmp_path: Path) -> None:
    """A fork's layout (here a non-square 4x8 start, as some forks train) is not ours."""
    generator = tiny()
    with torch.no_grad():
        generator.synthesis.b4.const = torch.nn.Parameter(torch.randn(48, 4, 8))
    save_nvlabs(generator, tmp_path / "wide.pkl")
    with pytest.raises(CheckpointError, match=r"wide\.pkl: does not match a StyleGAN2"):
        read_checkpoint(tmp_path / "wide.pkl").build()


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    good = save_rosinality(tiny(), tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt"):
        read_checkpoint(cut)


# -- the model a patch plays ------------------------------------------------------------------


def test_the_model_draws_at_the_shows_size_with_the_performers_controls(tmp_path: Path) -> None:
    generator = tiny()
    model = load_stylegan(save_rosinality(generator, tmp_path / "g.pt"), 40, 24, CPU)
    z = torch.randn(24)
    drawn = model(z, psi=0.7)
    assert drawn.shape == (24, 40, 3) and drawn.min() >= 0.0 and drawn.max() <= 1.0
    assert torch.equal(model(z, psi=0.7), drawn)  # const noise: the same frame twice
    assert not torch.equal(model(z, psi=0.7, noise="random"), drawn)
    torch.testing.assert_close(model(z, psi=0.7, noise_strength=0.0),
                               model(z, psi=0.7, noise="none"))
    w = model.w(z)
    torch.testing.assert_close(model(w=w, psi=0.7), drawn)  # z and its w draw the same
    torch.testing.assert_close(model(w=w.expand(model.num_ws, -1), psi=0.7), drawn)
    torch.testing.assert_close(model(z, psi=0.0), model(z, psi=0.0, centre=model.w_avg))
    assert not torch.equal(model(z, psi=0.0, centre=w), model(z, psi=0.0))
    loop = [model(z, psi=0.7, noise="animated", noise_phase=phase) for phase in (0.0, 0.3, 1.0)]
    torch.testing.assert_close(loop[0], drawn)  # the loop starts on the trained noise
    torch.testing.assert_close(loop[2], drawn, atol=1e-5, rtol=0)  # and comes back to it
    assert not torch.allclose(loop[1], drawn)
    other = model.w(torch.randn(24))
    mixed = model.mix(w, other, from_layer=4)
    assert torch.equal(mixed[:4], w.expand(4, -1)) and torch.equal(mixed[4:], other.expand(4, -1))
    coarse = model.directions("coarse", k=4)
    assert coarse is model.directions("coarse", k=4) and coarse.vectors.shape == (4, 32)
    steered = coarse.apply(w.expand(model.num_ws, -1), [3.0])
    assert not torch.allclose(model(w=steered, psi=0.7), drawn)
    with pytest.raises(ValueError, match="24 numbers"):
        model(torch.randn(23))
    with pytest.raises(ValueError, match="noise is one of"):
        model(z, noise="loud")


def test_noise_controls_given_as_tensors_draw_what_numbers_draw() -> None:
    """A CUDA graph reads the noise strength and phase from device tensors it replays with;
    the drawing must not depend on which of the two it is given."""
    generator = tiny()
    synthesis, ws = generator.synthesis, torch.randn(1, generator.num_ws, 32)
    for mode, strength, phase in (("const", 0.6, 0.0), ("animated", 1.4, 0.3),
                                  ("animated", 1.0, 0.85)):
        numbers = synthesis(ws, Noise(mode, strength, phase))
        tensors = synthesis(ws, Noise(mode, torch.tensor(strength), torch.tensor(phase)))
        torch.testing.assert_close(tensors, numbers, rtol=0, atol=1e-5)  # float32 cos
    assert not torch.allclose(synthesis(ws, Noise("animated", 1.0, 0.3)),
                              synthesis(ws, Noise("animated", 1.0, 0.85)))


def test_a_patch_loads_a_checkpoint_beside_it_and_perform_convert_writes_one(
        tmp_path: Path) -> None:
    save_rosinality(tiny(), tmp_path / "mine.pt")
    patch = tmp_path / "walk.py"
    patch.write_text(
        "from perform import models, param, walks\n"
        "model = models.load('mine.safetensors')\n"
        "psi = param('psi', 0.7, 0.0, 1.0)\n"
        "def frame(ctx):\n"
        "    return model(walks.noise_loop(ctx.t / 4, dim=model.z_dim), psi=psi)\n")
    run = [sys.executable, "-m", "perform"]
    done = subprocess.run([*run, "convert", str(tmp_path / "mine.pt"),
                           str(tmp_path / "mine.safetensors")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "rosinality StyleGAN2, 32px" in done.stderr
    done = subprocess.run([*run, "render", str(patch), "--seconds", "0.5", "--fps", "4",
                           "--size", "32x32", "--out", str(tmp_path / "stills")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "stills").glob("*.png"))) == 2
    done = subprocess.run([*run, "convert", str(patch), str(tmp_path / "x.safetensors")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "walk.py: not a checkpoint" in done.stderr


def test_two_checkpoints_morph_under_a_fader_and_different_ones_crossfade(tmp_path: Path) -> None:
    a = tiny(seed=0)
    b = tiny(seed=0)
    with torch.no_grad():
        for tensor in b.parameters():
            tensor.add_(torch.randn_like(tensor) * 0.3)  # "fine-tuned" from a
    save_nvlabs(a, tmp_path / "a.pkl")
    save_nvlabs(b, tmp_path / "b.pkl")
    save_nvlabs(tiny(resolution=64), tmp_path / "big.pkl")
    host = ModelHost(32, 32, CPU)
    pair = host.morph(str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl"))
    z = torch.randn(24)
    torch.testing.assert_close(pair(z, mix=0.0), host.get(str(tmp_path / "a.pkl"))(z))
    torch.testing.assert_close(pair(z, mix=1.0), host.get(str(tmp_path / "b.pkl"))(z))
    halfway = pair(z, mix=0.5, curve="coarse-a", psi=0.8)
    assert halfway.shape == (32, 32, 3)
    fade = host.morph(str(tmp_path / "a.pkl"), str(tmp_path / "big.pkl"))
    assert "A is 32px, B is 64px" in fade.why  # weights cannot blend: the images fade
    big = host.get(str(tmp_path / "big.pkl"))
    torch.testing.assert_close(fade(z, mix=0.0), pair(z, mix=0.0))
    torch.testing.assert_close(fade(z, mix=1.0), big(z))
    torch.testing.assert_close(fade(z, mix=0.25, psi=0.5),
                               torch.lerp(pair(z, mix=0.0, psi=0.5), big(z, psi=0.5), 0.25))
    with pytest.raises(ModelError, match="crossfade"):
        host.morph(str(tmp_path / "a.pkl"), "cppn:seed=1")


@pytest.mark.parametrize("precision", ["bf16", "mixed"])
def test_half_precision_draws_within_a_stated_tolerance_of_fp32(tmp_path: Path,
                                                                precision: str) -> None:
    """bf16 keeps 8 bits of mantissa: on average within half a level of 255 of fp32, at
    worst a few levels, where clamps and leaky ReLU corners amplify rounding. "mixed" runs
    only the blocks the checkpoint trained in half precision that way (here the last two,
    read from the pickle), on the CPU in bf16."""
    save_nvlabs(tiny(resolution=64, conv_clamp=256.0, num_fp16_res=2), tmp_path / "g.pkl")
    exact = load_stylegan(tmp_path / "g.pkl", 64, 64, CPU)
    fast = load_stylegan(tmp_path / "g.pkl", 64, 64, CPU, precision)
    assert exact.precision == "fp32" and exact.config.num_fp16_res == 2
    for seed in range(4):
        z = torch.randn(24, generator=torch.Generator().manual_seed(seed))
        difference = (exact(z, psi=0.7) - fast(z, psi=0.7)).abs()
        assert 0 < difference.mean() < 0.005 and difference.max() < 0.06


def test_the_reference_check_tells_a_matching_image_from_another(tmp_path: Path) -> None:
    """tools/check_reference.py compares our drawing of a seed with the user's own image of
    it; here the reference is our own drawing, so only the tool's mechanics are tested."""
    checkpoint = save_nvlabs(tiny(conv_clamp=256.0), tmp_path / "g.pkl")
    tool = [sys.executable, str(Path(__file__).resolve().parent.parent / "tools"
                                / "check_reference.py"), str(checkpoint)]
    sys.path.insert(0, str(Path(tool[1]).parent))
    try:
        from check_reference import draw
    finally:
        sys.path.pop(0)
    Image.fromarray(draw(str(checkpoint), 7, 1.0, None)).save(tmp_path / "seed7.png")
    same = subprocess.run([*tool, str(tmp_path / "seed7.png"), "--seed", "7"],
                          capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.startswith("match: PSNR inf dB")
    other = subprocess.run([*tool, str(tmp_path / "seed7.png"), "--seed", "8"],
                           capture_output=True, text=True)
    assert other.returncode == 1 and other.stdout.startswith("DIFFER")


def test_a_checkpoint_saved_again_is_read_again_with_its_morphs(tmp_path: Path) -> None:
    """A newer training snapshot copied over the old file plays from the next patch load."""
    a, b = str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")
    save_nvlabs(tiny(seed=0), tmp_path / "a.pkl")
    save_nvlabs(tiny(seed=0), tmp_path / "b.pkl")
    host = ModelHost(32, 32, CPU)
    first, pair = host.get(a), host.morph(a, b)
    assert host.get(a) is first and host.morph(a, b) is pair  # unchanged: the same objects
    save_nvlabs(tiny(seed=5), tmp_path / "a.pkl")
    os.utime(a, ns=(0, 10**18))  # a later time, whatever the file system's resolution
    again = host.get(a)
    assert again is not first
    z = torch.randn(24)
    assert not torch.allclose(again(z), first(z))
    assert host.morph(a, b) is not pair


def test_fp16_stays_in_range_where_styles_are_large(tmp_path: Path) -> None:
    """Half precision tops out at 65504: the demodulation sum of a 48-channel layer with
    styles near 100 passes it. Computed in float32, with the styles scaled to at most 1
    (demodulation undoes the scale), the image stays finite and close to fp32."""
    generator = tiny(conv_clamp=256.0)
    with torch.no_grad():
        for name, tensor in generator.named_parameters():
            if name.endswith("affine.bias"):
                tensor.fill_(100.0)
    save_nvlabs(generator, tmp_path / "g.pkl")
    exact = load_stylegan(tmp_path / "g.pkl", 32, 32, CPU)
    half = load_stylegan(tmp_path / "g.pkl", 32, 32, CPU, "fp16")
    z = torch.randn(24)
    drawn = half(z)
    assert torch.isfinite(drawn).all() and drawn.std() > 0.01
    assert (drawn - exact(z)).abs().mean() < 0.01


def test_a_checkpoint_first_asked_for_inside_frame_loads_without_stalling_it(
        tmp_path: Path) -> None:
    """Reading a checkpoint takes seconds; inside `frame` the patch gets a clear error (the
    previous version or the last image stays up) until the background read is done."""
    save_nvlabs(tiny(), tmp_path / "late.pkl")
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04garbage")
    patch = tmp_path / "show.py"
    patch.write_text("import numpy as np\nfrom perform import models, param\n"
                     "name = param('name', 'late.pkl')\n"
                     "def frame(ctx):\n"
                     "    model = models.load(str(name))\n"
                     "    return model(np.zeros(model.z_dim))\n")
    host = ModelHost(32, 32, CPU)
    engine = Engine(ParamStore(), host, width=32, height=32, fps=30)
    engine.offer(load_patch(patch, 1, host))
    engine.render_one(0.0)
    assert "being read in the background" in engine.error.message
    wait_for(lambda: engine.render_one(0.1).image.std() > 0, what="the model to draw")
    engine.store.set("name", "broken.pkl")
    wait_for(lambda: engine.render_one(0.3) and engine.error
             and "broken.pkl" in engine.error.message
             and "background" not in engine.error.message, what="the file's own error")

"""Weight morphs between two StyleGAN2 generators: the ends are the models themselves, the
middle is the average of their weights, the curves put each model where they say, a still
fader costs nothing, and models that cannot be blended are refused with the reason.

No trained pair can be downloaded here, so B is A with every trained tensor nudged, as
fine-tuning leaves a model: different images, the same architecture, aligned weights.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytest
import torch
from small_gans import tiny

from perform.models.stylegan.morph import (
    CURVES,
    Morph,
    MorphError,
    check_compatible,
    depth,
    ramp,
)
from perform.models.stylegan.sg2 import SG2Generator

RESOLUTIONS = (4, 8, 16, 32)  # tiny()'s blocks; depths 0, 1/3, 2/3 and 1


def fine_tuned(generator: SG2Generator, seed: int = 1) -> SG2Generator:
    """A copy with every trained tensor moved by about a third of its size; the up-sampling
    filter stays, as it does in training."""
    torch.manual_seed(seed)
    other = copy.deepcopy(generator)
    with torch.no_grad():
        for key, tensor in other.state_dict().items():
            if not key.endswith("resample_filter"):
                tensor.add_(torch.randn_like(tensor) * tensor.abs().mean() * 0.3)
    return other


def image(generator: SG2Generator, seed: int = 1) -> torch.Tensor:
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z, truncation=0.7)


def block_keys(generator: SG2Generator, resolution: int) -> list[str]:
    return [key for key in generator.state_dict() if key.startswith(f"synthesis.b{resolution}.")]


@pytest.fixture
def pair() -> tuple[SG2Generator, SG2Generator]:
    a = tiny()
    return a, fine_tuned(a)


# -- the blend ---------------------------------------------------------------------------------


def test_mix_0_draws_exactly_a_and_mix_1_exactly_b_and_back(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    a, b = pair
    morph = Morph(a, b)
    assert not torch.allclose(image(a), image(b), atol=0.05)  # two different models
    assert morph.set(0.0) is morph.generator
    assert torch.equal(image(morph.generator), image(a))
    morph.set(1.0)
    assert torch.equal(image(morph.generator), image(b))
    morph.set(0.3)
    morph.set(0.0)  # the fader comes home: no drift left behind
    assert torch.equal(image(morph.generator), image(a))
    assert all(torch.equal(t, a.state_dict()[k]) for k, t in morph.generator.state_dict().items())


def test_mix_half_is_the_generator_with_the_mean_of_both_state_dicts(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    a, b = pair
    sa, sb = a.state_dict(), b.state_dict()
    mean = SG2Generator(a.config).eval()
    mean.load_state_dict({key: (sa[key] + sb[key]) / 2 for key in sa})
    blended = Morph(a, b).set(0.5)
    for key, tensor in blended.state_dict().items():  # buffers too: w_avg, noise_const
        torch.testing.assert_close(tensor, mean.state_dict()[key], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(image(blended), image(mean), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # truncation pulls towards the blend's own average
        torch.testing.assert_close(blended.mapping.w_avg, (a.mapping.w_avg + b.mapping.w_avg) / 2)


def test_a_still_fader_costs_nothing_and_the_weights_stay_where_they_are(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    morph = Morph(*pair)
    tensors = morph.generator.state_dict()
    pointers = {key: t.data_ptr() for key, t in tensors.items()}
    morph.set(0.4)
    assert morph.recomputed == 1
    before = {key: t.clone() for key, t in tensors.items()}
    morph.set(0.4)
    morph.set(0.4, centre=0.9, sharpness=3.0)  # uniform does not use them
    assert morph.recomputed == 1
    assert all(torch.equal(t, before[key]) for key, t in tensors.items())
    morph.set(1.0)
    morph.set(7.0)  # past the end of the fader is the end
    assert morph.recomputed == 2
    morph.set(1.0, "swap", centre=0.5)
    morph.set(0.2, "swap", centre=0.5)  # swap ignores the mix
    assert morph.recomputed == 3
    for curve in CURVES:
        morph.set(0.7, curve, centre=0.3, sharpness=4.0)
    assert morph.recomputed == 3 + len(CURVES)
    assert {k: t.data_ptr() for k, t in morph.generator.state_dict().items()} == pointers
    assert all(t.data_ptr() == pointers[k] for k, t in tensors.items())  # written in place


# -- the curves --------------------------------------------------------------------------------


def test_depth_runs_from_the_mapping_and_4x4_to_the_last_block() -> None:
    assert depth("mapping.fc1.weight", 32) == depth("mapping.w_avg", 32) == 0.0
    assert [depth(f"synthesis.b{res}.conv1.weight", 32) for res in RESOLUTIONS] == [
        0.0, 1 / 3, 2 / 3, 1.0]
    assert depth("synthesis.b64.torgb.bias", 1024) == 0.5
    with pytest.raises(MorphError, match="neither"):
        depth("discriminator.b4.weight", 32)


def test_coarse_a_at_full_strength_keeps_a_s_layout_and_takes_b_s_texture(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    a, b = pair
    morph = Morph(a, b)
    shares = morph.layer_mix(1.0, "coarse-a")
    by_depth = sorted((depth(key, 32), share) for key, share in shares.items())
    assert [s for _, s in by_depth] == sorted(s for _, s in by_depth)  # monotonic in depth
    assert all(share == 0.0 for key, share in shares.items() if key.startswith("mapping."))
    blended = morph.set(1.0, "coarse-a").state_dict()
    sa, sb = a.state_dict(), b.state_dict()
    for key in block_keys(a, 4) + [k for k in sa if k.startswith("mapping.")]:
        assert torch.equal(blended[key], sa[key]), key
    for key in block_keys(a, 32):
        assert torch.equal(blended[key], sb[key]), key
    middle = "synthesis.b16.conv1.weight"
    assert 0.5 < shares[middle] < 1.0  # past the centre, not yet B
    torch.testing.assert_close(blended[middle], torch.lerp(sa[middle], sb[middle],
                                                           shares[middle]))
    mirror = morph.layer_mix(1.0, "coarse-b")
    assert all(mirror[key] == pytest.approx(1.0 - share) for key, share in shares.items())
    half = morph.layer_mix(0.5, "coarse-a")
    assert all(half[key] == pytest.approx(share / 2) for key, share in shares.items())
    assert set(morph.layer_mix(0.0, "coarse-b").values()) == {0.0}  # mix 0 is A everywhere


def test_the_ramp_is_exact_at_its_ends_monotonic_and_a_line_when_gentle() -> None:
    depths = [i / 20 for i in range(21)]
    for centre in (0.0, 0.3, 0.5, 1.0):
        for sharpness in (0.0, 1e-12, 1e-4, 2.0, 10.0, 1e4):
            values = [ramp(d, centre, sharpness) for d in depths]
            assert values[0] == 0.0 and values[-1] == pytest.approx(1.0, abs=1e-12)
            assert values == sorted(values), (centre, sharpness)
        gentle = [ramp(d, centre, 1e-4) for d in depths]
        assert gentle == pytest.approx(depths, abs=1e-8)  # continuous into sharpness 0
    assert ramp(0.5, 0.5, 10.0) == pytest.approx(0.5)
    assert ramp(0.4, 0.5, 1e4) == pytest.approx(0.0) and ramp(0.6, 0.5, 1e4) == pytest.approx(1.0)


def test_swap_takes_whole_blocks_exactly_from_a_below_the_centre_and_b_above(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    a, b = pair
    morph = Morph(a, b)
    sa, sb = a.state_dict(), b.state_dict()
    # views of the blended tensors: they show each set() that follows
    blended = morph.set(0.0, "swap", centre=0.5).state_dict()  # the mix plays no part
    for res, source in zip(RESOLUTIONS, (sa, sa, sb, sb), strict=True):
        assert all(torch.equal(blended[key], source[key]) for key in block_keys(a, res)), res
    assert all(torch.equal(blended[k], sa[k]) for k in sa if k.startswith("mapping."))
    morph.set(1.0, "swap", centre=1 / 3)  # a block exactly at the centre is B's
    for res, source in zip(RESOLUTIONS, (sa, sb, sb, sb), strict=True):
        assert all(torch.equal(blended[key], source[key]) for key in block_keys(a, res)), res
    assert torch.equal(image(morph.set(1.0, "swap", centre=0.0)), image(b))


def test_unknown_curves_and_nan_settings_are_refused(
        pair: tuple[SG2Generator, SG2Generator]) -> None:
    morph = Morph(*pair)
    with pytest.raises(ValueError, match="uniform, coarse-a, coarse-b, swap") as refused:
        morph.set(0.5, "wobble")
    assert "wobble" in str(refused.value)
    with pytest.raises(ValueError, match="wobble"):
        morph.layer_mix(0.5, "wobble")
    with pytest.raises(ValueError, match="finite"):
        morph.set(float("nan"))
    assert morph.recomputed == 0


# -- what cannot be blended --------------------------------------------------------------------


def other_channels() -> SG2Generator:
    """tiny() with b16 narrower: the same resolutions, a different network."""
    base = tiny()
    channels = dict(base.config.channels)
    channels[16] = 24
    return SG2Generator(dataclasses.replace(base.config, channels=channels))


@pytest.mark.parametrize(("other", "difference"), [
    (lambda: tiny(resolution=64), "A is 32px, B is 64px"),
    (other_channels, "b16 has 32 channels in A and 24 in B"),
    (lambda: tiny(c_dim=10), "A is unconditional, B is conditional with 10 classes"),
    (lambda: tiny(mapping_layers=8), "A's mapping has 2 layers, B's has 8"),
    (lambda: tiny(architecture="resnet"), "A's architecture is skip, B's is resnet"),
    (lambda: tiny().half(), "mapping.fc0.weight is torch.float32 in A and torch.float16 in B"),
])
def test_models_that_cannot_be_blended_are_refused_saying_what_differs(
        other: Callable[[], SG2Generator], difference: str) -> None:
    with pytest.raises(MorphError) as refused:
        Morph(tiny(), other())
    assert difference in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_every_difference_is_named_and_a_long_list_is_counted() -> None:
    with pytest.raises(MorphError) as refused:
        check_compatible(tiny(c_dim=5), tiny(resolution=64, mapping_layers=3))
    message = str(refused.value)
    assert "A is 32px, B is 64px" in message and "A is conditional with 5 classes" in message
    assert "A's mapping has 2 layers, B's has 3" in message
    with pytest.raises(MorphError, match=r"and \d+ more"):
        check_compatible(tiny(), tiny().half())  # every tensor differs; the first are named
    check_compatible(tiny(), fine_tuned(tiny()))  # aligned models pass

import itertools

import numpy as np
import pytest
import torch

from perform import walks
from perform.models.cppn import ACTIVATIONS, CPPN
from perform.models.host import ModelError, ModelHost

CPU = torch.device("cpu")


def image(model, z) -> np.ndarray:
    return model(z).numpy().astype(np.float32)


def reference(model: CPPN, z: torch.Tensor) -> torch.Tensor:
    """The CPPN written the plain way, with real tanh: the fast path must match it."""
    w = model.weights
    act = {"tanh": torch.tanh, "sin": torch.sin}
    h = act[ACTIVATIONS[0]](model.renderer.coords @ w.coords + z @ w.latent + w.bias)
    for (weight, bias), name in zip(w.hidden, ACTIVATIONS[1:], strict=True):
        h = act[name](h @ weight + bias)
    rgb = torch.sigmoid(h @ w.rgb[0] + w.rgb[1]) * 255 + 0.5
    return rgb.to(torch.uint8).view(model.renderer.height, model.renderer.width, 3)


def test_fast_renderer_matches_the_plain_network():
    model = CPPN(3, 96, 64, CPU)
    z = torch.from_numpy(walks.seed_latent(5, model.z_dim))
    diff = (reference(model, z).int() - model(z).int()).abs()
    assert diff.max() <= 1


def test_cppn_is_a_smooth_colourful_picture_not_noise():
    model = CPPN(7, 128, 128, CPU)
    img = image(model, walks.seed_latent(1, model.z_dim))
    neighbour_step = np.abs(np.diff(img, axis=1)).mean()
    noise = np.random.default_rng(0).integers(0, 256, img.shape).astype(np.float32)
    assert neighbour_step < 0.1 * np.abs(np.diff(noise, axis=1)).mean()  # smooth
    assert img.std() > 30  # not a flat wash
    saturation = (img.max(axis=2) - img.min(axis=2)).mean()
    assert saturation > 40  # colourful, not grey


def test_small_latent_moves_give_small_image_changes():
    model = CPPN(7, 64, 64, CPU)
    z = walks.seed_latent(2, model.z_dim)
    step = np.abs(image(model, z + 0.01) - image(model, z)).mean()
    jump = np.abs(image(model, walks.seed_latent(3, model.z_dim)) - image(model, z)).mean()
    assert step < 5.0 and 10 * step < jump


def test_seeds_are_different_models_and_rebuilds_are_identical():
    z = walks.seed_latent(0, 16)
    a, a_again, b = CPPN(1, 32, 32, CPU), CPPN(1, 32, 32, CPU), CPPN(2, 32, 32, CPU)
    assert np.array_equal(image(a, z), image(a_again, z))
    assert np.abs(image(a, z) - image(b, z)).mean() > 10


def test_morph_ends_are_the_two_models_and_the_middle_is_between():
    host = ModelHost(48, 32, CPU)
    pair = host.morph("cppn:seed=1", "cppn:seed=2")
    a, b = host.get("cppn:seed=1"), host.get("cppn:seed=2")
    z = walks.seed_latent(4, 16)
    start, end = image(a, z), image(b, z)
    assert np.abs(image(pair, z, ) - start).max() <= 1  # mix defaults to 0
    assert np.abs(pair(z, mix=1.0).numpy().astype(np.float32) - end).max() <= 1
    steps = [pair(z, mix=m).numpy().astype(np.float32) for m in np.linspace(0, 1, 101)]
    gaps = [np.abs(x - y).mean() for x, y in itertools.pairwise(steps)]
    assert max(gaps) < 0.15 * np.abs(end - start).mean()  # a glide, not a cut


def test_host_caches_models_and_explains_bad_names():
    host = ModelHost(32, 32, CPU)
    assert host.get("cppn:seed=3") is host.get("cppn:seed=3")
    with pytest.raises(ModelError, match="cppn:seed=N"):
        host.get("stylegan:foo")
    with pytest.raises(ModelError, match="key=integer"):
        host.get("cppn:seed=x")
    with pytest.raises(ModelError, match="unknown option"):
        host.get("cppn:colour=2")
    host.keep_only(["cppn:seed=3"])
    assert host.loaded() == ["cppn:seed=3"]


def test_wrong_latent_length_says_what_the_model_takes():
    with pytest.raises(ValueError, match="16 numbers, got 3"):
        CPPN(1, 8, 8, CPU)([0.0, 1.0, 2.0])

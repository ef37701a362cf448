"""SeFa directions: that they are the top eigenvectors of the stacked, row-normalised style
affines, that applying them moves only the chosen layers, and that they move those layers'
styles more than any random direction does.

Each test builds a small random generator; the affines are looked up here by the names and
w indices the synthesis network uses, independently of how `directions` walks the blocks.
"""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch
from small_gans import tiny

from perform.models.stylegan.directions import (
    LAYER_GROUPS,
    Directions,
    factorise,
    group_layers,
    style_affines,
)
from perform.models.stylegan.sg2 import FullyConnected, SG2Config, SG2Generator

W_DIM = 32


def affines_by_index(generator: SG2Generator) -> dict[int, list[FullyConnected]]:
    """The affines each w index feeds, by name: b4.conv1 -> 0, b4.torgb -> 1, and at r >= 8
    with k = log2(r) - 2: conv0 -> 2k - 1, conv1 -> 2k, torgb -> 2k + 1."""
    synthesis = generator.synthesis
    found: dict[int, list[FullyConnected]] = {0: [synthesis.b4.conv1.affine]}
    if hasattr(synthesis.b4, "torgb"):
        found.setdefault(1, []).append(synthesis.b4.torgb.affine)
    for resolution in generator.config.resolutions[1:]:
        k = int(math.log2(resolution)) - 2
        block = getattr(synthesis, f"b{resolution}")
        found.setdefault(2 * k - 1, []).append(block.conv0.affine)
        found.setdefault(2 * k, []).append(block.conv1.affine)
        if hasattr(block, "torgb"):
            found.setdefault(2 * k + 1, []).append(block.torgb.affine)
    return found


def base_ws(generator: SG2Generator, seed: int = 1) -> torch.Tensor:
    z = torch.randn(1, 24, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z).expand(generator.num_ws, -1).clone()


def styles(generator: SG2Generator, ws: torch.Tensor) -> dict[int, torch.Tensor]:
    """The styles every affine puts out while the synthesis draws ws, keyed by w index."""
    seen: dict[int, torch.Tensor] = {}
    hooks = [affine.register_forward_hook(
        lambda _module, _inputs, out, i=index: seen.__setitem__(
            i, torch.cat([seen[i], out], dim=1) if i in seen else out))
        for index, affines in affines_by_index(generator).items() for affine in affines]
    try:
        generator.synthesis(ws[None])
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_the_walk_finds_every_affine_at_the_w_index_that_feeds_it(architecture: str) -> None:
    generator = tiny(architecture)
    expected = {(i, id(a)) for i, affines in affines_by_index(generator).items() for a in affines}
    found = style_affines(generator)
    assert {(i, id(a)) for i, a in found} == expected and len(found) == len(expected)
    with_rgb = 3 * len(generator.config.resolutions) - 1
    assert len(found) == (with_rgb if architecture == "skip" else with_rgb - 3)


def test_directions_are_orthonormal_strongest_first_and_signed_the_same_every_time() -> None:
    directions = factorise(tiny(), k=12)
    assert directions.vectors.shape == (12, W_DIM) and directions.strengths.shape == (12,)
    torch.testing.assert_close(directions.vectors @ directions.vectors.T, torch.eye(12),
                               atol=1e-5, rtol=0)
    assert (directions.strengths[:-1] >= directions.strengths[1:]).all()
    assert (directions.strengths > 0).all() and directions.layers == tuple(range(8))
    largest = directions.vectors.gather(1, directions.vectors.abs().argmax(1, keepdim=True))
    assert (largest > 0).all()
    again = factorise(tiny(), k=12)  # the same weights: the same directions, not negated
    assert torch.equal(again.vectors, directions.vectors)


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
@pytest.mark.parametrize("layers", ["all", "coarse", "middle", (2, 5), (7,)])
def test_they_are_the_top_eigenvectors_of_the_stacked_normalised_affines(
        architecture: str, layers: str | tuple[int, ...]) -> None:
    generator = tiny(architecture)
    chosen = group_layers(layers, 8) if isinstance(layers, str) else layers
    by_index = affines_by_index(generator)
    stacked = torch.cat([a.weight.double() for i in chosen for a in by_index[i]])
    stacked = stacked / stacked.norm(dim=1, keepdim=True)
    eigenvalues, eigenvectors = torch.linalg.eigh(stacked.T @ stacked)
    top = eigenvectors[:, -8:].flip(1).T.float()
    directions = factorise(generator, layers, k=8)
    assert directions.layers == tuple(chosen)
    cosines = (directions.vectors * top).sum(dim=1).abs()
    torch.testing.assert_close(cosines, torch.ones(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(directions.strengths, eigenvalues[-8:].flip(0).float())
    every = factorise(generator, layers, k=W_DIM)  # all of them share out one vote per row
    assert every.strengths.sum().item() == pytest.approx(len(stacked), rel=1e-5)
    _, _, right = torch.linalg.svd(stacked)  # the same as the right singular vectors
    torch.testing.assert_close((directions.vectors * right[:8].float()).sum(dim=1).abs(),
                               torch.ones(8), atol=1e-4, rtol=0)


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_moving_along_the_strongest_direction_changes_the_image_and_zero_does_not(
        architecture: str) -> None:
    generator = tiny(architecture)
    directions = factorise(generator, "all", k=4)
    ws = base_ws(generator)
    kept = ws.clone()
    drawn = generator.synthesis(ws[None])
    unmoved = directions.apply(ws, [0.0])
    assert unmoved is not ws and torch.equal(unmoved, ws)
    assert torch.equal(generator.synthesis(unmoved[None]), drawn)
    moved = directions.apply(ws, [3.0])
    torch.testing.assert_close(moved - ws, (3.0 * directions.vectors[0]).expand(8, -1))
    assert (generator.synthesis(moved[None]) - drawn).abs().mean() > 1e-3
    assert torch.equal(ws, kept)  # never modified


def test_a_layer_subset_moves_only_those_layers() -> None:
    generator = tiny()
    directions = factorise(generator, "coarse", k=4)
    ws = base_ws(generator)
    step = 1.0 * directions.vectors[0] - 0.5 * directions.vectors[1]
    by_default = directions.apply(ws, torch.tensor([1.0, -0.5]))
    torch.testing.assert_close(by_default[:4], ws[:4] + step)
    assert torch.equal(by_default[4:], ws[4:])
    chosen = directions.apply(ws, [1.0, -0.5], layers=[6, 1])
    others = [i for i in range(8) if i not in (1, 6)]
    assert torch.equal(chosen[others], ws[others])
    torch.testing.assert_close(chosen[[1, 6]], ws[[1, 6]] + step)
    before, after = styles(generator, ws), styles(generator, chosen)
    for index in range(8):
        assert torch.equal(before[index], after[index]) == (index not in (1, 6))


def test_the_strongest_direction_moves_the_targeted_styles_more_than_random_ones() -> None:
    """SeFa's objective, measured on the styles the network really computes."""
    generator = tiny()
    directions = factorise(generator, "coarse", k=2)
    ws = base_ws(generator)
    before = styles(generator, ws)

    def moved_styles(direction: torch.Tensor) -> float:
        after = styles(generator, ws + direction)  # every layer moved, only coarse measured
        return sum((after[i] - before[i]).square().sum().item() for i in directions.layers)

    strongest = moved_styles(directions.vectors[0])
    randoms = torch.randn(200, W_DIM, generator=torch.Generator().manual_seed(3))
    best_random = max(moved_styles(r / r.norm()) for r in randoms)
    assert strongest > 1.2 * best_random
    assert strongest > moved_styles(directions.vectors[1])


def test_batches_move_each_row_as_a_single_ws_would() -> None:
    generator = tiny()
    directions = factorise(generator, "middle", k=3)
    batch = torch.stack([base_ws(generator, seed) for seed in (1, 2, 3)])
    moved = directions.apply(batch, [2.0, 1.0, -1.0])
    assert moved.shape == (3, 8, W_DIM)
    for row, ws in enumerate(batch):
        torch.testing.assert_close(moved[row], directions.apply(ws, [2.0, 1.0, -1.0]))
    drawn = generator.synthesis(moved)
    assert drawn.shape == (3, 3, 32, 32)
    assert not torch.equal(drawn, generator.synthesis(batch))


def test_group_names_cover_the_documented_w_indices_at_32_and_1024px() -> None:
    assert set(LAYER_GROUPS) == {"coarse", "middle", "fine", "all"}
    assert group_layers("coarse", 8) == (0, 1, 2, 3)
    assert group_layers("middle", 8) == (4, 5, 6, 7)
    assert group_layers("fine", 8) == ()
    assert group_layers("all", 8) == tuple(range(8))
    generator = tiny()
    assert factorise(generator, "coarse").layers == (0, 1, 2, 3)
    assert factorise(generator, "middle").layers == (4, 5, 6, 7)
    with pytest.raises(ValueError, match="'fine' is empty at 32px"):
        factorise(generator, "fine")


def test_a_full_size_1024px_generator_factorises_into_its_documented_groups() -> None:
    """Config-f at 1024px: 18 w indices. The time is printed (pytest -s), not asserted."""
    torch.manual_seed(0)
    config = SG2Config(img_resolution=1024, channels=SG2Config.channels_for(1024, 32768, 512))
    generator = SG2Generator(config).eval().requires_grad_(False)
    assert generator.num_ws == 18
    expected = {"coarse": tuple(range(4)), "middle": tuple(range(4, 8)),
                "fine": tuple(range(8, 18)), "all": tuple(range(18))}
    for group, indices in expected.items():
        assert group_layers(group, 18) == indices
        directions = factorise(generator, group, k=16)
        assert directions.layers == indices and directions.vectors.shape == (16, 512)
        torch.testing.assert_close(directions.vectors @ directions.vectors.T, torch.eye(16),
                                   atol=1e-5, rtol=0)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        factorise(generator, "all", k=16)
        times.append(time.perf_counter() - start)
    print(f"factorise, 1024px config-f, all layers, k=16: median "
          f"{statistics.median(times) * 1000:.1f} ms of {len(times)}")


def test_mistakes_are_refused_with_what_was_wrong() -> None:
    generator = tiny()
    with pytest.raises(ValueError, match="unknown layer group 'mouth'"):
        factorise(generator, "mouth")
    with pytest.raises(ValueError, match=r"out of range.*0 to 7"):
        factorise(generator, [0, 8])
    with pytest.raises(ValueError, match="out of range"):
        factorise(generator, [-1])
    with pytest.raises(ValueError, match="no layers"):
        factorise(generator, [])
    for k in (0, W_DIM + 1):
        with pytest.raises(ValueError, match=f"k must be between 1 and w_dim \\({W_DIM}\\)"):
            factorise(generator, k=k)
    directions = factorise(generator, k=3)
    assert isinstance(directions, Directions)
    ws = base_ws(generator)
    with pytest.raises(ValueError, match="at most 3 numbers"):
        directions.apply(ws, [1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="out of range"):
        directions.apply(ws, [1.0], layers=[8])
    with pytest.raises(ValueError, match="ws must be"):
        directions.apply(ws[:, :5], [1.0])

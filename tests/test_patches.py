"""Every shipped patch loads, draws and moves; the patch API behaves like plain numbers."""

import ast
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from small_gans import save_nvlabs, tiny

from perform.core import scope
from perform.core.loader import load_patch
from perform.core.params import ParamStore
from perform.core.readback import FrameShapeError, Readback
from perform.engine import Engine
from perform.models.host import ModelHost
from perform.patch import param

PATCHES = sorted((Path(__file__).resolve().parent.parent / "patches").glob("*.py"))


CHECKPOINTS = {"stylegan_walk.py": ("stylegan.pkl",), "audio_stylegan.py": ("stylegan.pkl",),
               "stylegan_morph.py": ("stylegan-a.pkl", "stylegan-b.pkl")}


@pytest.fixture
def checkpoints(tmp_path: Path) -> Callable[[Path], Path]:
    """The patch itself where it needs no file; else a copy beside small random checkpoints
    (B fine-tuned from A, so they morph), as an artist would put their own."""
    def place(path: Path) -> Path:
        names = CHECKPOINTS.get(path.name)
        if names is None:
            return path
        for i, name in enumerate(names):
            generator = tiny(seed=0)
            with torch.no_grad():
                for tensor in generator.parameters():
                    tensor.add_(torch.randn_like(tensor) * 0.2 * i)
            save_nvlabs(generator, tmp_path / name)
        copy = tmp_path / path.name
        copy.write_text(path.read_text())
        return copy
    return place


def engine_for(path: Path, width: int = 64, height: int = 48) -> Engine:
    models = ModelHost(width, height, torch.device("cpu"))
    engine = Engine(ParamStore(), models, width=width, height=height, fps=30)
    engine.offer(load_patch(path, 1, models))
    return engine


def test_the_three_example_patches_ship():
    assert {p.name for p in PATCHES} >= {"spacewalk.py", "morph.py", "keyframes.py"}


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_patch_draws_a_changing_picture(path, checkpoints):
    engine = engine_for(checkpoints(path))
    frames = [engine.render_one(t).image for t in (0.0, 2.0, 4.0)]
    assert engine.error is None
    assert all(f.shape == (48, 64, 3) and f.std() > 10 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 1


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_patch_reads_like_a_score_importing_only_perform(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] == "perform" for a in node.names), path
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] == "perform", path


def test_morph_param_moves_between_the_two_models():
    path = next(p for p in PATCHES if p.name == "morph.py")
    engine = engine_for(path)
    start = engine.render_one(0.0).image.astype(int)
    engine.store.set("morph/mix", 1.0)
    for i in range(1, 40):  # the fader is smoothed: let it arrive
        end = engine.render_one(i / 10).image.astype(int)
    assert engine.store.snapshot(0)[0]["morph/mix"] == pytest.approx(1.0, abs=1e-3)
    assert np.abs(start - end).mean() > 10


def test_param_acts_as_its_current_value_in_arithmetic():
    speed = param("walk/speed", 0.5, 0.0, 1.0)
    assert speed * 2 == 1.0 and 2 * speed == 1.0 and 1 - speed == 0.5 and speed / 2 == 0.25
    assert float(speed) == 0.5 and speed > 0.4 and speed <= 0.5
    array = np.ones(3) * speed
    assert array.dtype == np.float64 and array.tolist() == [0.5] * 3
    tensor = torch.ones(2) * speed
    assert isinstance(tensor, torch.Tensor) and tensor.tolist() == [0.5, 0.5]
    token = scope.frame_values.set({"walk/speed": 0.25})
    try:
        assert speed * 4 == 1.0 and repr(speed) == "param('walk/speed' = 0.25)"
    finally:
        scope.frame_values.reset(token)


def test_frames_accept_float_and_uint8_images_and_refuse_wrong_shapes():
    rgb8 = Readback().rgb8
    floats = torch.full((4, 5, 3), 0.5)
    assert rgb8(floats, 5, 4).max() == 128
    assert rgb8(np.zeros((4, 5, 3), np.uint8), 5, 4).flags.writeable is False
    with pytest.raises(FrameShapeError, match=r"\(4, 5, 3\)"):
        rgb8(np.zeros((5, 4, 3)), 5, 4)
    with pytest.raises(FrameShapeError, match="must return an image"):
        rgb8(None, 5, 4)


def test_phase_glides_when_the_speed_knob_moves():
    from perform.patch import Ctx

    state: dict = {}

    def ctx(t: float) -> Ctx:
        return Ctx(t=t, frame=0, dt=0.1, fps=10, width=1, height=1, bpm=120, params={},
                   state=state)

    positions = [ctx(i / 10).phase(0.5) for i in range(10)]  # 1 s at half a loop a second
    assert positions[-1] == pytest.approx(0.5)
    assert ctx(1.0).phase(2.0) == pytest.approx(0.7)  # no jump: one more step, faster
    assert ctx(1.1).phase(0.0, name="other") == 0.0 and state["phase"] == pytest.approx(0.7)

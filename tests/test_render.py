"""`perform render`: offline, frame-exact, the same file every time."""

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perform", "render", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_mp4_has_every_frame_at_the_asked_size_and_is_deterministic(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        done = render("patches/spacewalk.py", "--seconds", "1.5", "--fps", "12",
                      "--size", "96x64", "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
    first, second = decode(tmp_path / "a.mp4"), decode(tmp_path / "b.mp4")
    assert len(first) == 18
    assert first[0].shape == (64, 96, 3)
    assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    assert np.abs(first[0].astype(int) - first[-1].astype(int)).mean() > 0.5  # it moves


def test_png_stills_are_exact_and_repeatable(tmp_path):
    for name in ("one", "two"):
        done = render("patches/morph.py", "--seconds", "0.5", "--fps", "8", "--size", "40x30",
                      "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
    stills = sorted((tmp_path / "one").glob("*.png"))
    assert [p.name for p in stills] == [f"frame_{i:06d}.png" for i in range(4)]
    for still in stills:
        image = np.asarray(Image.open(still))
        assert image.shape == (30, 40, 3)
        assert np.array_equal(image, np.asarray(Image.open(tmp_path / "two" / still.name)))


def test_a_broken_patch_renders_nothing_and_says_where(tmp_path):
    patch = tmp_path / "broken.py"
    patch.write_text("from perform import models\n\ndef frame(ctx):\n    return 1 / 0\n")
    done = render(str(patch), "--seconds", "1", "--out", str(tmp_path / "out.mp4"))
    assert done.returncode == 1
    assert f"{patch}:4: ZeroDivisionError" in done.stderr
    assert not (tmp_path / "out.mp4").exists()

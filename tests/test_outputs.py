"""Outputs in general: `--output` specs, fitting a frame to another size, the live recorder
(decoded back), failures that stay inside their output."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from perform.core.fit import fit_array, fit_tensor, parse_size, placement
from perform.core.frames import Frame
from perform.outputs import make_output
from perform.outputs.base import OutputSpec, RunningOutput


def frame(seq: int, t: float, image: np.ndarray) -> Frame:
    image.flags.writeable = False
    return Frame(seq, t, image, {}, 0, 1, time.monotonic())


def noise(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- specs ------------------------------------------------------------------------------------


def test_an_output_spec_reads_kind_options_and_bare_flags() -> None:
    spec = OutputSpec.parse(" NDI:name=stage left, alpha=luma,fps=30 ")
    assert spec.kind == "ndi" and dict(spec.options) == {"name": "stage left", "alpha": "luma",
                                                         "fps": "30"}
    assert dict(OutputSpec.parse("window:fullscreen,screen=1").options) == {
        "fullscreen": "true", "screen": "1"}
    assert str(OutputSpec.parse("record:path=a.mp4,codec=hevc")) == "record:path=a.mp4,codec=hevc"
    with pytest.raises(ValueError, match="should look like"):
        OutputSpec.parse(":name=x")


def test_a_wrong_kind_or_option_is_refused_with_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no output kind 'ndl'; there are window, preview, "
                                         "record, ndi"):
        make_output(OutputSpec.parse("ndl"), 64, 48, 30)
    with pytest.raises(ValueError, match="has no option 'pth'; it takes size, fit, fps, path"):
        make_output(OutputSpec.parse("record:pth=x.mp4"), 64, 48, 30)
    with pytest.raises(ValueError, match=r"size='big': size 'big' should look like 1920x1080"):
        make_output(OutputSpec.parse("record:size=big"), 64, 48, 30)
    with pytest.raises(ValueError, match="fit='squash': one of letterbox, crop, stretch"):
        make_output(OutputSpec.parse("record:fit=squash"), 64, 48, 30)
    with pytest.raises(ValueError, match="even width and height"):
        make_output(OutputSpec.parse(f"record:path={tmp_path / 'a.mp4'},size=63x48"), 64, 48, 30)
    assert parse_size("1920x1080") == (1920, 1080)


# -- fitting ----------------------------------------------------------------------------------


def test_letterbox_crop_and_stretch_place_the_picture_as_named() -> None:
    assert placement(512, 512, 1920, 1080, "letterbox") == (420, 0, 1080, 1080)
    assert placement(512, 512, 1920, 1080, "crop") == (0, -420, 1920, 1920)
    assert placement(512, 512, 1920, 1080, "stretch") == (0, 0, 1920, 1080)
    left_right = np.zeros((40, 40, 3), np.uint8)
    left_right[:, :20] = (255, 0, 0)
    left_right[:, 20:] = (0, 0, 255)
    boxed = fit_array(left_right, 80, 40, "letterbox")
    assert (boxed[:, :20] == 0).all() and (boxed[:, 60:] == 0).all()  # black bars
    assert (boxed[:, 22:38] == (255, 0, 0)).all() and (boxed[:, 42:58] == (0, 0, 255)).all()
    cropped = fit_array(left_right, 20, 40, "crop")  # the middle half survives
    assert (cropped[:, :8] == (255, 0, 0)).all() and (cropped[:, 12:] == (0, 0, 255)).all()
    assert fit_array(left_right, 40, 40, "crop") is left_right  # nothing to do, no copy


def test_the_gpu_scaler_matches_the_cpu_one() -> None:
    """What the engine does on the GPU (run here on a CPU tensor) against Pillow."""
    image = noise(64, 48, 0)
    smooth = np.asarray(torch.nn.functional.avg_pool2d(
        torch.from_numpy(image).permute(2, 0, 1).float(), 5, 1, 2).permute(1, 2, 0).byte())
    for size in ((128, 72, "letterbox"), (100, 100, "crop"), (32, 40, "stretch")):
        on_cpu = fit_array(np.ascontiguousarray(smooth), *size).astype(int)
        tensor = fit_tensor(torch.from_numpy(np.ascontiguousarray(smooth)).float() / 255, *size)
        on_gpu = (tensor.clamp(0, 1) * 255 + 0.5).byte().numpy().astype(int)
        assert on_cpu.shape == on_gpu.shape == (size[1], size[0], 3)
        assert np.abs(on_cpu - on_gpu).mean() < 2.5, size


# -- the recorder -----------------------------------------------------------------------------


def decoded(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return ([float(f.pts * f.time_base) for f in frames],
                [f.to_ndarray(format="rgb24") for f in frames])


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_recording_keeps_the_shows_real_pace(tmp_path: Path, codec: str) -> None:
    """Frames are stamped with the time they were drawn: a gap in the show (a slow frame)
    is a longer frame in the file, not a faster film."""
    path = tmp_path / "show.mp4"
    running = RunningOutput(make_output(OutputSpec.parse(f"record:path={path},codec={codec}"),
                                        64, 48, 30.0))
    running.start()
    times = [0.0, 1 / 30, 2 / 30, 3 / 30, 0.5, 0.5 + 1 / 30]  # a 0.4 s hole after frame 3
    sent = []
    for i, t in enumerate(times):
        image = np.full((48, 64, 3), 40 * i, np.uint8)
        sent.append(image.copy())
        running.mailbox.put(frame(i, 10.0 + t, image))  # the show was 10 s in
        wait_until(lambda i=i: running.sent == i + 1)
    assert not path.exists()  # under its final name only once complete
    running.close()
    assert running.state()["status"] == "stopped" and running.errors == 0
    stamps, images = decoded(path)
    assert len(images) == len(times) and images[0].shape == (48, 64, 3)
    assert stamps == pytest.approx(times, abs=1e-4)
    for got, want in zip(images, sent, strict=True):
        assert np.abs(got.astype(int) - want).mean() < 2  # flat frames survive the codec


def test_a_recording_at_another_size_and_a_capped_rate(tmp_path: Path) -> None:
    path = tmp_path / "small.mkv"
    running = RunningOutput(make_output(
        OutputSpec.parse(f"record:path={path},size=32x32,fps=10"), 64, 48, 60.0))
    running.start()
    for i in range(12):  # 60 fps for 0.2 s: a 10 fps cap keeps about every sixth
        running.mailbox.put(frame(i, i / 60, noise(64, 48, i)))
        time.sleep(1 / 60)
    wait_until(lambda: running.sent + running.skipped == 12)
    running.close()
    images = decoded(path)[1]
    assert images[0].shape == (32, 32, 3) and 2 <= len(images) <= 3
    assert running.skipped == 12 - len(images)


def test_a_full_disk_stops_the_recording_with_a_message_and_keeps_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    full = tmp_path / "full.mp4"
    (tmp_path / ".full.partial.mp4").symlink_to("/dev/full")
    good = tmp_path / "good.mp4"
    outputs = [RunningOutput(make_output(OutputSpec.parse(f"record:path={p}"), 256, 256, 30))
               for p in (full, good)]
    for output in outputs:
        output.start()
    for i in range(30):  # noise does not compress: the writes reach the disk at once
        for output in outputs:
            output.mailbox.put(frame(i, i / 30, noise(256, 256, i)))
        time.sleep(0.01)
    wait_until(lambda: outputs[0].state()["status"] == "stopped")
    state = outputs[0].state()
    assert state["last_error"].startswith("recording stopped: No space left on device")
    assert "No space left on device" in caplog.text
    assert outputs[1].state()["status"] == "running"  # the other output never noticed
    wait_until(lambda: outputs[1].sent + outputs[1].mailbox.replaced >= 30)
    for output in outputs:
        output.close()
    assert len(decoded(good)[1]) == outputs[1].sent

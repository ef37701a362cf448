"""The virtual camera output, and Spout and Syphon where they cannot run (here: Linux).

No v4l2loopback device can exist on this machine (a kernel without loadable modules, no
/dev/video*), so frames are caught by a stand-in: a small capturing backend registered
with `pyvirtualcam.register_backend`, which keeps every frame pyvirtualcam hands it and
can be told to be absent, to vanish, or to hang. Everything above it (pyvirtualcam's
`Camera`, `VirtualCamera`, `RunningOutput` and its retries) is the real code; only the
real v4l2loopback write is not exercised. pyvirtualcam's own v4l2loopback backend is used
as is for "no device here".
"""

from __future__ import annotations

import glob
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import pyvirtualcam
from pyvirtualcam.camera import BACKENDS
from pyvirtualcam.util import encode_fourcc

from perform.core.frames import Frame
from perform.outputs import base
from perform.outputs.base import OutputSpec, OutputUnavailable, RunningOutput
from perform.outputs.spout import SpoutOutput
from perform.outputs.syphon import SyphonOutput
from perform.outputs.virtualcam import VirtualCamera

RGB = encode_fourcc(pyvirtualcam.PixelFormat.RGB.value)


class Devices:
    """The stand-in camera "hardware" one test controls, and what reached it."""

    def __init__(self) -> None:
        self.present = True  # False: opening raises as pyvirtualcam does without a device
        self.broken: str | None = None  # a message: `send` raises it (the device vanished)
        self.may_open = threading.Event()  # cleared: opening waits (a slow device)
        self.may_open.set()
        self.hang = threading.Event()  # set: `send` blocks until `release` is set
        self.release = threading.Event()
        self.opened: list[dict[str, Any]] = []
        self.frames: list[np.ndarray] = []
        self.closed = 0


class CaptureBackend:
    """A pyvirtualcam backend (see pyvirtualcam.camera.Backend) that records frames."""

    devices: Devices  # set on the subclass each test registers

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int,
                 device: str | None, **kw: Any) -> None:
        self.devices.may_open.wait(5)
        if not self.devices.present:
            raise RuntimeError("no capture device")
        self._device = device or "capture0"
        self.devices.opened.append({"width": width, "height": height, "fps": fps,
                                    "fourcc": fourcc, "device": device})

    def send(self, frame: np.ndarray) -> None:
        if self.devices.hang.is_set():
            self.devices.release.wait()
        if self.devices.broken:
            raise RuntimeError(self.devices.broken)
        self.devices.frames.append(frame.copy())

    def close(self) -> None:
        self.devices.closed += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return RGB


def register_capture(devices: Devices) -> None:
    pyvirtualcam.register_backend("capture", type("Capture", (CaptureBackend,),
                                                  {"devices": devices}))


@pytest.fixture
def devices() -> Iterator[Devices]:
    devices = Devices()
    register_capture(devices)
    yield devices
    devices.release.set()  # a test's hung send may return now, and its thread end
    devices.may_open.set()
    BACKENDS.pop("capture", None)


@pytest.fixture
def runners() -> Iterator[Callable[..., RunningOutput]]:
    """Start outputs; close every one at the end, even when the test failed."""
    started: list[RunningOutput] = []

    def start(output: Any) -> RunningOutput:
        runner = RunningOutput(output)
        started.append(runner)
        runner.start()
        return runner

    yield start
    for runner in started:
        runner.close(timeout=0.5)


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "REOPEN_AFTER", 0.05)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Exceptions that escape any thread during the test (there should be none)."""
    caught: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", caught.append)
    return caught


def make_frame(seq: int, image: np.ndarray) -> Frame:
    """As perform/engine.py builds one: a read-only image, stamped when published."""
    image = np.ascontiguousarray(image)
    image.flags.writeable = False
    return Frame(seq, seq / 30, image, {}, 0, 0, time.monotonic(), 0.0)


def noise(seq: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(seq).integers(0, 256, (height, width, 3), dtype=np.uint8)


def until(check: Callable[[], Any], timeout: float = 3.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def camera(options: str = "backend=capture", width: int = 64, height: int = 32,
           fps: float = 30.0) -> VirtualCamera:
    return VirtualCamera(OutputSpec.parse(f"virtualcam:{options}"), width, height, fps)


def deliver(runner: RunningOutput, devices: Devices, image: np.ndarray, seq: int = 0
            ) -> np.ndarray:
    """Put one frame in the output's mailbox; what the camera got, as (h, w, 3)."""
    count = len(devices.frames)
    runner.mailbox.put(make_frame(seq, image))
    until(lambda: len(devices.frames) > count, what=f"frame {seq} at the camera")
    width, height = runner.output.width, runner.output.height
    return devices.frames[-1].reshape(height, width, 3)


def test_frames_arrive_pixel_for_pixel(devices: Devices, runners: Any) -> None:
    runner = runners(camera())
    until(lambda: runner.status == "running", what="running")
    for seq in range(5):
        image = noise(seq, 64, 32)
        got = deliver(runner, devices, image, seq)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, image)
    assert devices.opened == [{"width": 64, "height": 32, "fps": 30.0, "fourcc": RGB,
                               "device": None}]
    state = runner.state()
    assert (state["status"], state["sent"], state["errors"]) == ("running", 5, 0)
    assert state["device"] == "capture0"
    runner.close(timeout=2)
    assert runner.status == "stopped" and devices.closed == 1


def test_device_option_is_passed_on(devices: Devices, runners: Any) -> None:
    runner = runners(camera("backend=capture,device=/dev/video7"))
    until(lambda: runner.status == "running", what="running")
    assert devices.opened[0]["device"] == "/dev/video7"
    assert runner.state()["device"] == "/dev/video7"


def test_letterbox_to_the_output_size(devices: Devices, runners: Any) -> None:
    runner = runners(camera("backend=capture,size=64x64,fit=letterbox"))
    image = noise(1, 64, 32)
    got = deliver(runner, devices, image)
    assert devices.opened[0]["width"] == 64 and devices.opened[0]["height"] == 64
    assert got.shape == (64, 64, 3)
    assert not got[:16].any() and not got[48:].any()  # black bars above and below
    np.testing.assert_array_equal(got[16:48], image)


def test_crop_and_stretch_to_the_output_size(devices: Devices, runners: Any) -> None:
    image = noise(2, 64, 32)
    runner = runners(camera("backend=capture,size=32x32,fit=crop"))
    np.testing.assert_array_equal(deliver(runner, devices, image), image[:, 16:48])
    runner.close(timeout=2)
    runner = runners(camera("backend=capture,size=16x48,fit=stretch"))
    got = deliver(runner, devices, image)
    assert got.shape == (48, 16, 3)
    assert all(edge.any() for edge in (got[0], got[-1], got[:, 0], got[:, -1]))  # no bars


@pytest.mark.parametrize(("options", "fps"), [("", 24.0), (",fps=10", 10.0)])
def test_camera_frame_rate(devices: Devices, runners: Any, options: str, fps: float) -> None:
    runner = runners(camera("backend=capture" + options, fps=24.0))
    until(lambda: devices.opened, what="the camera to open")
    assert devices.opened[0]["fps"] == fps
    until(lambda: runner.status == "running", what="running")


@pytest.mark.skipif(not sys.platform.startswith("linux") or bool(glob.glob("/dev/video*")),
                    reason="needs Linux without any /dev/video device")
def test_no_device_fails_with_the_hint_and_recovers_when_one_appears(
        quick_retry: None, runners: Any, thread_errors: list[Any],
        caplog: pytest.LogCaptureFixture) -> None:
    assert "capture" not in BACKENDS  # pyvirtualcam's own choice: v4l2loopback only
    caplog.set_level(logging.INFO, logger="perform.outputs")
    runner = runners(camera(""))
    until(lambda: runner.errors >= 3, what="several tries")
    state = runner.state()
    assert state["status"] == "failed" and state["device"] is None
    message = state["last_error"]
    assert "\n" not in message and "v4l2" in message
    assert ("sudo apt install v4l2loopback-dkms && "
            "sudo modprobe v4l2loopback exclusive_caps=1 card_label=perform") in message
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # said once, however often it is tried again
    assert runner._thread.is_alive()  # the show goes on; the runner keeps trying

    devices = Devices()  # ... and a camera appears mid-show
    try:
        register_capture(devices)
        until(lambda: runner.status == "running", what="the camera to be picked up")
        image = noise(3, 64, 32)
        np.testing.assert_array_equal(deliver(runner, devices, image), image)
        assert runner.state()["device"] == "capture0"
        assert any("running again" in r.getMessage() for r in caplog.records)
    finally:
        BACKENDS.pop("capture", None)
    assert thread_errors == []


def test_missing_device_is_retried_not_given_up(quick_retry: None, devices: Devices,
                                                runners: Any) -> None:
    devices.present = False
    runner = runners(camera())
    until(lambda: runner.errors >= 2, what="two tries")
    assert runner.status == "failed" and "no capture device" in runner.last_error
    devices.present = True
    until(lambda: runner.status == "running", what="recovery")


def test_camera_that_vanishes_mid_show_fails_then_recovers(
        quick_retry: None, devices: Devices, runners: Any, thread_errors: list[Any]) -> None:
    runner = runners(camera())
    deliver(runner, devices, noise(0, 64, 32))
    devices.broken = "device unplugged"
    devices.may_open.clear()  # hold the first try to open it again, to read the failure
    runner.mailbox.put(make_frame(1, noise(1, 64, 32)))
    until(lambda: runner.status == "failed", what="the failure")
    state = runner.state()
    assert state["last_error"] == "virtual camera capture0 stopped taking frames: device unplugged"
    assert state["device"] is None and devices.closed == 1
    devices.present = False  # gone for good: the tries to open it fail too
    devices.may_open.set()
    until(lambda: runner.errors >= 3, what="tries to open it again")
    assert runner.status == "failed" and "no capture device" in runner.last_error
    devices.broken, devices.present = None, True  # plugged back in
    until(lambda: runner.status == "running", what="recovery")
    image = noise(2, 64, 32)
    np.testing.assert_array_equal(deliver(runner, devices, image, 2), image)
    assert runner.sent == 2 and thread_errors == []


def test_send_that_hangs_does_not_hold_up_close(devices: Devices, runners: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    runner = runners(camera())
    deliver(runner, devices, noise(0, 64, 32))
    devices.hang.set()
    runner.mailbox.put(make_frame(1, noise(1, 64, 32)))
    until(lambda: runner.mailbox.delivered == 2, what="the frame to be taken")
    started = time.monotonic()
    runner.close(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert runner._thread.is_alive()
    assert any("did not stop within" in r.getMessage() and "left behind" in r.getMessage()
               for r in caplog.records)
    devices.release.set()  # the device comes back: the left-behind thread ends cleanly
    runner._thread.join(2)
    assert not runner._thread.is_alive() and devices.closed == 1


def test_unknown_backend_is_unavailable(runners: Any) -> None:
    runner = runners(camera("backend=nosuch"))
    runner._thread.join(2)
    assert runner.status == "unavailable" and "'nosuch'" in runner.last_error


def test_without_pyvirtualcam_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(OutputUnavailable, match="pip install pyvirtualcam"):
        camera().open()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux side of them")
@pytest.mark.parametrize(("kind", "needs"), [(SpoutOutput, "Windows"), (SyphonOutput, "macOS")])
def test_spout_and_syphon_off_their_os(kind: Any, needs: str, runners: Any,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="perform.outputs")
    runner = runners(kind(OutputSpec.parse(kind.kind), 64, 32, 30.0))
    runner._thread.join(2)
    assert not runner._thread.is_alive()  # said once, never tried again
    assert runner.status == "unavailable"
    message = runner.last_error
    assert "\n" not in message
    assert needs in message and "Linux" in message
    assert "--output ndi" in message and "--output virtualcam" in message
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and message in warnings[0].getMessage()
    assert runner.errors == 1 and runner.sent == 0


@pytest.mark.parametrize(("kind", "platform", "module", "pip"), [
    (SpoutOutput, "win32", "SpoutGL", "pip install SpoutGL"),
    (SyphonOutput, "darwin", "syphon", "pip install syphon-python")])
def test_spout_and_syphon_without_their_package(kind: Any, platform: str, module: str,
                                                pip: str, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    output = kind(OutputSpec.parse(f"{kind.kind}:name=show"), 64, 32, 30.0)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed, wherever we are
    monkeypatch.setattr(sys, "platform", platform)
    with pytest.raises(OutputUnavailable, match=pip):
        output.open()
    assert output.describe() == {"name": "show"}


def test_a_stuck_camera_holds_up_neither_the_render_nor_the_recording(
        devices: Devices, live_show: Any, tmp_path: Any) -> None:
    """A whole show with two outputs, one of them hanging inside `send` for good: the
    render keeps its pace, the recording gets every frame's worth, the state API says who
    is behind, and the show still stops."""
    import av
    from conftest import wait_for

    patch = tmp_path / "show.py"
    patch.write_text("import numpy as np\n\ndef frame(ctx):\n"
                     "    return np.full((ctx.height, ctx.width, 3), ctx.frame % 2, np.float32)\n")
    devices.hang.set()
    video = tmp_path / "show.mp4"
    live = live_show(patch, fps=30.0, outputs=(OutputSpec.parse("virtualcam:backend=capture"),
                                               OutputSpec.parse(f"record:path={video}")))
    time.sleep(0.5)  # the camera takes its first frame and never returns
    first = len(live.recorder.frames)
    time.sleep(2.0)
    rendered = len(live.recorder.frames) - first
    assert rendered >= 2.0 * 30 * 0.9  # the render's pace held
    camera, recording = wait_for(lambda: live.state()["outputs"])
    assert camera["kind"] == "virtualcam" and camera["sent"] == 0
    assert camera["dropped"] >= rendered  # every frame since waits in vain, then is replaced
    assert recording["status"] == "running" and recording["fps"] > 30 * 0.9
    assert recording["dropped"] <= 2
    live.show.stop.set()
    live.thread.join(timeout=10)
    assert not live.thread.is_alive()  # the hung camera did not keep the show from ending
    with av.open(str(video)) as container:  # finished and playable, every frame in it
        assert sum(1 for _ in container.decode(video=0)) == live.show.outputs[1].sent > 60

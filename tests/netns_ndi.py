"""The NDI output sending to a real NDI receiver (cyndilib's), only inside a private network
namespace (test_output_ndi.py): an NDI sender listens on 0.0.0.0 and announces itself.

Discovery: on Linux the NDI library announces and browses through Avahi over D-Bus, which a
bare namespace does not have (multicast on lo does not help: libndi opens no mDNS socket of
its own). So the receiver's Finder is told to also ask 127.0.0.1 directly, through an NDI
config file (`ndi-config.v1.json`, "networks": {"ips": "127.0.0.1"}, found through
NDI_CONFIG_DIR): sources are found by name through that, not by a hard-coded address.

NDI's codec (SpeedHQ, 4:2:2) is lossy, so pixels are compared within a bound: on the test
pattern below (flat colours, gradients, a grey ramp) the mean abs error measured 2.2 levels
(of 255) at 64x48, the worst pixel 13, and 2.9 / 46 (next to the bars) letterboxed to
32x32; we assert mean < MEAN_BOUND. Most of it is blue coming back low (220 -> 209, 255 ->
240): the YUV NDI sends is exact BT.709, the loss is in the NDI library's own conversion
back to RGB on the receiving side. A colour edge inside a pixel pair (4:2:2) is worse still.
Exits 0 on success; otherwise says what failed.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import cyndilib
import numpy as np

from perform.core.fit import fit_array
from perform.core.frames import Frame
from perform.outputs.base import OutputSpec, RunningOutput
from perform.outputs.ndi import NdiOutput

MEAN_BOUND = 4.0  # levels of 255, mean abs error over all pixels and channels (measured ~2)
# NDI names are per machine, not per network namespace: two runs at once must not share one
TAG = str(os.getpid())


def fail(message: str) -> None:
    raise SystemExit(f"FAILED: {message}")


def until(check: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(0.01)
    return result


def pattern(width: int, height: int) -> np.ndarray:
    """Flat patches, a red/green gradient and a grey ramp: what a codec does well and badly.
    Colour edges fall on multiples of 4 pixels, here and halved (letterbox), because NDI
    sends colour once per pair of pixels (4:2:2): an edge inside a pair is a different test."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = x * 255 // (width - 1)
    image[..., 1] = y * 255 // (height - 1)
    image[..., 2] = 60
    left, right = width * 3 // 8 // 4 * 4, width * 11 // 16 // 4 * 4
    image[: height // 2, left:right] = (200, 30, 30)
    image[height // 2:, left:right] = (20, 90, 220)
    ramp = (x[:, right:] - right) * 255 // (width - right - 1)
    image[:, right:] = ramp[..., None]
    image.flags.writeable = False
    return image


@contextmanager
def running(spec: str, width: int, height: int, fps: float,
            image: np.ndarray) -> Iterator[RunningOutput]:
    """The output on its RunningOutput, fed `image` 60 times a second like a render would."""
    runner = RunningOutput(NdiOutput(OutputSpec.parse(spec), width, height, fps))
    runner.start()
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop.wait(1 / 60):
            runner.mailbox.put(Frame(seq, seq / 60, image, {}, 0, 0, time.monotonic(), 0.0))
            seq += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        until(lambda: runner.state()["status"] == "running", f"{spec} to run")
        yield runner
    finally:
        stop.set()
        feeder.join()
        runner.close()


class Receiver:
    """A cyndilib receiver on the source `finder` lists under `name` ("HOST (name)"), read
    through its frame sync: every cyndilib Receiver makes one, and it takes the incoming
    frames (Receiver.receive then gets few of them), always offering the newest."""

    def __init__(self, finder: Any, name: str) -> None:
        def found() -> str | None:
            finder.wait_for_sources(0.1)
            return next((n for n in finder.get_source_names() if n.endswith(f"({name})")), None)

        self.name = until(found, f"the NDI finder to list {name!r}")
        self.receiver = cyndilib.Receiver(color_format=cyndilib.RecvColorFormat.RGBX_RGBA,
                                          bandwidth=cyndilib.RecvBandwidth.highest,
                                          recv_name="perform-test-receiver")
        self.frame = cyndilib.VideoFrameSync()
        self.receiver.frame_sync.set_video_frame(self.frame)
        self.receiver.connect_to(finder.get_source(self.name))

    def grab(self, timeout: float = 5.0) -> tuple[np.ndarray, Fraction]:
        """The newest frame as (height, width, 4) RGBA, and the frame rate it says it has."""
        def received() -> bool:  # an empty frame (0x0) until the first one has come in
            self.receiver.frame_sync.capture_video()
            return self.frame.get_resolution()[0] > 0

        until(received, f"a frame from {self.name!r}", timeout)
        width, height = self.frame.get_resolution()
        rows = self.frame.get_array().reshape(height, self.frame.get_line_stride())
        return rows[:, :width * 4].reshape(height, width, 4), self.frame.get_frame_rate()

    def leave(self) -> None:
        self.receiver.disconnect()


def errors(got: np.ndarray, want: np.ndarray) -> tuple[float, int]:
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    return float(diff.mean()), int(diff.max())


def check_main(finder: Any) -> None:
    """Found by name, the output's size and rate, the pixels, opaque alpha, a receiver
    that leaves without the sender noticing more than its count going down, and a second
    sender under the same name failing on its own."""
    image = pattern(64, 48)
    name = f"perform-test-{TAG}"
    with running(f"ndi:name={name}", 64, 48, 30.0, image) as runner:
        receiver = Receiver(finder, name)
        print(f"found: {receiver.name!r} by name through the finder")
        rgba, rate = receiver.grab()
        if rgba.shape != (48, 64, 4):
            fail(f"received {rgba.shape[1]}x{rgba.shape[0]}, sent 64x48")
        mean, worst = errors(rgba[..., :3], image)
        print(f"pixels: 64x48, mean abs error {mean:.2f} levels, worst {worst} "
              f"(bound: mean < {MEAN_BOUND})")
        if mean >= MEAN_BOUND:
            fail(f"mean error {mean:.2f} >= {MEAN_BOUND}")
        if rgba[..., 3].min() != 255:
            fail(f"opaque output has alpha down to {rgba[..., 3].min()}")
        if rate != Fraction(30):
            fail(f"receiver sees {rate} frames a second, sent 30")
        until(lambda: runner.state()["receivers"] == 1, "the sender to count its receiver")
        state = runner.state()
        print(f"frame rate: 30.0 -> {rate}; state: {state['ndi_name']!r}, "
              f"receivers {state['receivers']}")

        receiver.leave()
        del receiver
        until(lambda: runner.state()["receivers"] == 0, "the receiver to be gone", 5.0)
        before = runner.state()["sent"]
        time.sleep(0.5)
        state = runner.state()
        if state["status"] != "running" or state["errors"] or state["sent"] - before < 5:
            fail(f"after the receiver left: {state}")
        again, _ = Receiver(finder, name).grab()
        print(f"receiver left: status {state['status']}, {state['sent'] - before} more sent "
              f"in 0.5 s, errors {state['errors']}; a new receiver got {again.shape[1]}x"
              f"{again.shape[0]}")

        twin = RunningOutput(NdiOutput(OutputSpec.parse(f"ndi:name={name}"), 64, 48, 30.0))
        twin.start()  # the same name twice: NDI refuses, and that must not crash the show
        until(lambda: twin.state()["status"] == "failed", "the second sender to fail")
        twin.close()
        if runner.state()["status"] != "running":
            fail(f"the first sender stopped when a second took its name: {runner.state()}")
        print(f"same name twice: {twin.last_error}")


def check_letterbox(finder: Any) -> None:
    image = pattern(64, 48)
    want = fit_array(image, 32, 32, "letterbox")  # 32x24 with 4 black rows above and below
    with running(f"ndi:name=perform-box-{TAG},size=32x32", 64, 48, 59.94, image):
        rgba, rate = Receiver(finder, f"perform-box-{TAG}").grab()
    if rgba.shape != (32, 32, 4):
        fail(f"size=32x32 arrived as {rgba.shape[1]}x{rgba.shape[0]}")
    mean, worst = errors(rgba[..., :3], want)
    bars = float(np.concatenate([rgba[:3, :, :3], rgba[-3:, :, :3]]).mean())
    print(f"letterbox: 64x48 into 32x32, mean abs error {mean:.2f} worst {worst}, bars "
          f"{bars:.1f}; 59.94 -> {rate}")
    if mean >= MEAN_BOUND or bars > 8:
        fail(f"letterboxed frame off: mean error {mean:.2f}, bars {bars:.1f}")
    if rate != Fraction(60000, 1001):
        fail(f"receiver sees {rate} frames a second, sent 59.94 (60000/1001)")


def check_luma(finder: Any) -> None:
    """alpha=luma: black transparent, white opaque, grey half, a pure red solid (HSB)."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 16:32] = 255
    image[:, 32:48] = 128
    image[:, 48:] = (255, 0, 0)
    with running(f"ndi:name=perform-luma-{TAG},alpha=luma,fps=29.97", 64, 48, 60.0, image):
        rgba, rate = Receiver(finder, f"perform-luma-{TAG}").grab()
    alpha = [float(np.median(rgba[8:40, x0 + 4:x0 + 12, 3])) for x0 in (0, 16, 32, 48)]
    print("luma alpha: black {:.0f}, white {:.0f}, grey {:.0f}, red {:.0f}; fps=29.97 -> "
          "{}".format(*alpha, rate))
    if not (alpha[0] <= 5 and alpha[1] >= 250 and abs(alpha[2] - 128) <= 8
            and alpha[3] >= 250):
        fail(f"alpha does not follow brightness: {alpha}")
    if rate != Fraction(30000, 1001):
        fail(f"receiver sees {rate} frames a second, sent 29.97 (30000/1001)")


def main() -> None:
    config = Path(tempfile.mkdtemp(prefix="ndi-config-"))  # read when the finder starts
    (config / "ndi-config.v1.json").write_text(
        json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
    os.environ["NDI_CONFIG_DIR"] = str(config)
    started = time.monotonic()
    finder = cyndilib.Finder()
    finder.open()
    try:
        check_main(finder)
        check_letterbox(finder)
        check_luma(finder)
    finally:
        finder.close()
    print(f"ndi: all checks passed in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()

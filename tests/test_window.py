"""The on-screen output, checked in a real pyglet window on a private Xvfb display.

pyglet wants the main thread and remembers the display it found at import, so every case
runs `run_window` in a child Python that plays a short script of steps against it and reads
back what the X server shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from display import XvfbUnavailable, xvfb

from perform.outputs.window import display_available, letterbox

ROOT = Path(__file__).resolve().parents[1]
W, H = 64, 48

# The child runs one step every 50 ms (three frames at 60 fps, so whatever a step changed
# has been drawn and swapped by the next one). Steps: ["put", i] a frame; ["shot"] read the
# window's pixels from the X server (XGetImage: top row first, after the swap, what a
# projector would get); ["key", name] press a key; ["state"] note the window's state;
# ["stop"] set stop as the server would; ["close"] as the window manager's close button.
CHILD = r"""
import ctypes, json, sys, threading, time, types
import numpy as np
import pyglet
from pyglet.libs.x11 import xlib
from pyglet.window import key

spec = json.loads(sys.argv[1])
# perform/__init__.py pulls in torch for patches (about 1 s); the window needs none of it.
sys.modules["perform"] = types.ModuleType("perform")
sys.modules["perform"].__path__ = [spec["package"]]
from perform.core.frames import Frame, Mailbox
from perform.outputs.window import run_window

images = [np.load(p) for p in spec["images"]]
steps = list(spec["steps"])
mailbox, stop = Mailbox("window"), threading.Event()
shots, states, puts, timed_out = [], [], [0], []
deadline = time.monotonic() + 8.0

def read_screen(window):
    xlib.XSync(window._x_display, False)
    ximage = xlib.XGetImage(window._x_display, window._window, 0, 0, window.width,
                            window.height, xlib.XAllPlanes(), xlib.ZPixmap)
    c = ximage.contents
    assert (c.byte_order, c.bits_per_pixel, c.red_mask, c.green_mask, c.blue_mask) == (
        xlib.LSBFirst, 32, 0xFF0000, 0xFF00, 0xFF), "expected Xvfb's 24-bit TrueColor"
    data = ctypes.c_void_p.from_buffer(c, type(c).data.offset).value  # data is no C string
    h, w, pitch = c.height, c.width, c.bytes_per_line
    raw = np.frombuffer(ctypes.string_at(data, h * pitch), np.uint8)
    xlib.XFree(data)
    xlib.XFree(ximage)
    pixels = raw.reshape(h, pitch)[:, : w * 4].view("<u4")
    return np.stack([pixels >> 16, pixels >> 8, pixels], axis=-1).astype(np.uint8)

def step(dt):
    if time.monotonic() > deadline:  # run_window should have returned long ago
        timed_out.append(steps)
        pyglet.clock.unschedule(step)
        stop.set()
    if not steps or steps[0][0] == "shot" and mailbox.delivered < puts[0]:
        return  # done, or run_window has not taken the frame yet
    name, *args = steps.pop(0)
    window = next(iter(pyglet.app.windows))
    if name == "put":
        image = images[args[0]]
        image.flags.writeable = False
        mailbox.put(Frame(seq=puts[0], t=0.0, image=image, params={}, params_version=0,
                          patch_version=0, rendered_at=time.monotonic()))
        puts[0] += 1
    elif name == "shot":
        shots.append(read_screen(window))
    elif name == "key":
        mods = key.MOD_CTRL if args[0] == "CTRL_Q" else 0
        window.dispatch_event("on_key_press", key.Q if mods else getattr(key, args[0]), mods)
    elif name == "state":
        states.append({"open": window in pyglet.app.windows, "stop": stop.is_set(),
                       "fullscreen": window.fullscreen, "size": list(window.get_size())})
    elif name == "close":
        window.dispatch_event("on_close")
    elif name == "stop":
        stop.set()

pyglet.clock.schedule_interval(step, 0.05)
run_window(mailbox, width=spec["size"][0], height=spec["size"][1], fps=60.0, stop=stop)
np.savez(spec["out"], *shots)
print("REPORT " + json.dumps({"states": states, "timed_out": bool(timed_out),
                              "stop_set": stop.is_set(), "windows_open": len(pyglet.app.windows)}))
"""


@pytest.fixture(scope="module")
def x_display():
    try:
        with xvfb() as name:
            yield name
    except XvfbUnavailable as e:
        pytest.skip(f"no virtual X display for window tests: {e}")


def play(tmp_path: Path, images: list[np.ndarray], steps: list, *, size=(W, H)):
    """Run the child; return its screen shots (top row first) and window states."""
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"in{i}.npy"))
        np.save(paths[-1], image)
    out = tmp_path / "shots.npz"
    spec = {"images": paths, "steps": steps, "size": list(size), "out": str(out),
            "package": str(ROOT / "perform")}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-3000:]  # run_window returned cleanly
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert not report["timed_out"], f"run_window did not return: {report}\n{proc.stderr[-3000:]}"
    # However it ended, the window is gone and the rest of the server was told to stop.
    assert report["stop_set"] and report["windows_open"] == 0, report
    with np.load(out) as shots:
        return [shots[f"arr_{i}"] for i in range(len(shots.files))], report["states"]


def pattern(w: int = W, h: int = H, seed: int = 0, gradients: bool = True) -> np.ndarray:
    """Distinct quadrant colours plus gradients: no flip or mirror leaves it unchanged."""
    y, x = np.mgrid[0:h, 0:w] * gradients
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.where(np.arange(w) < w // 2, 200, 30) + seed
    image[..., 1] = np.where(np.arange(h)[:, None] < h // 2, 220, 10) + (x * 3 + seed) % 30
    image[..., 2] = (y * 5 + x + seed * 7) % 256
    return image


@pytest.mark.window
def test_shows_the_frame_pixel_for_pixel_and_returns_on_stop(x_display, tmp_path):
    a = pattern()
    assert not np.array_equal(a, a[::-1]) and not np.array_equal(a, a[:, ::-1])
    shots, _ = play(tmp_path, [a], [["put", 0], ["shot"], ["stop"]])
    assert shots[0].shape == (H, W, 3)
    assert np.array_equal(shots[0], a)


@pytest.mark.window
def test_a_newer_frame_replaces_the_old_one(x_display, tmp_path):
    a, b = pattern(), pattern(seed=17)[::-1].copy()
    shots, _ = play(tmp_path, [a, b], [["put", 0], ["shot"], ["put", 1], ["shot"], ["stop"]])
    assert np.array_equal(shots[0], a)
    assert np.array_equal(shots[1], b)


@pytest.mark.window
def test_other_sizes_are_letterboxed_in_black(x_display, tmp_path):
    narrow = pattern(32, H, seed=3)  # a new frame size: the texture is made anew, shown 1:1
    shots, _ = play(tmp_path, [pattern(), narrow],
                    [["put", 0], ["shot"], ["put", 1], ["shot"], ["stop"]])
    assert np.array_equal(shots[1][:, 16:48], narrow)
    assert not shots[1][:, :16].any() and not shots[1][:, 48:].any()
    wide, _ = play(tmp_path, [pattern()], [["put", 0], ["shot"], ["stop"]], size=(2 * W, H))
    assert np.array_equal(wide[0][:, 32:96], pattern())
    assert not wide[0][:, :32].any() and not wide[0][:, 96:].any()


@pytest.mark.window
def test_f_toggles_fullscreen_and_escape_only_leaves_it(x_display, tmp_path):
    a = pattern(gradients=False)  # flat quadrants, so smooth scaling keeps texel centres
    shots, states = play(tmp_path, [a], [
        ["put", 0], ["key", "ESCAPE"], ["state"],  # windowed: Escape must not quit
        ["key", "F"], ["state"], ["shot"], ["key", "ESCAPE"], ["state"], ["shot"], ["stop"]])
    assert states == [
        {"open": True, "stop": False, "fullscreen": False, "size": [W, H]},
        {"open": True, "stop": False, "fullscreen": True, "size": [1280, 1024]},
        {"open": True, "stop": False, "fullscreen": False, "size": [W, H]},
    ]
    full = shots[0]  # 20x: 1280x960 between black bars of 32 rows
    assert not full[:32].any() and not full[-32:].any()
    centres = full[32 + 10 : 32 + 960 : 20, 10::20].astype(int)  # each texel's centre
    assert centres.shape == a.shape and np.abs(centres - a).max() <= 6
    assert np.array_equal(shots[1], a)  # back to 1:1, exact again


@pytest.mark.window
@pytest.mark.parametrize("end", [["close"], ["key", "CTRL_Q"]], ids=["close", "ctrl_q"])
def test_closing_the_window_or_ctrl_q_sets_stop(x_display, tmp_path, end):
    play(tmp_path, [pattern()], [["put", 0], ["shot"], end])  # play checks stop and close


def test_letterbox_geometry():
    assert letterbox(64, 48, 64, 48) == (0, 0, 64, 48)
    assert letterbox(64, 48, 128, 48) == (32, 0, 64, 48)
    assert letterbox(64, 48, 64, 96) == (0, 24, 64, 48)
    assert letterbox(64, 48, 1280, 1024) == (0, 32, 1280, 960)


def test_display_available_follows_the_environment(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_available()
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("WAYLAND_DISPLAY")
    assert display_available()

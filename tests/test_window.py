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
from typing import NamedTuple

import numpy as np
import pytest
from display import XvfbUnavailable, xvfb

from perform.core.fit import placement
from perform.outputs.window import display_available

ROOT = Path(__file__).resolve().parents[1]
W, H = 64, 48

# The child runs one step every 50 ms (three frames at 60 fps, so whatever a step changed
# has been drawn and swapped by the next one). Steps: ["put", i] a frame; ["shot"] read the
# window's pixels from the X server (XGetImage: top row first, after the swap, what a
# projector would get); ["key", name] press a key; ["state"] note the window's state;
# ["wait"] nothing; ["stop"] set stop as the server would; ["close"] as the window
# manager's close button. spec["run"] holds more keyword arguments for run_window;
# spec["stats"] is the overlay's text; on_still counts presses and fails on the second.
CHILD = r"""
import ctypes, json, logging, sys, threading, time, types
import numpy as np
import pyglet
from pyglet.display import xlib as xdisplay
from pyglet.libs.x11 import xlib

spec = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
# perform/__init__.py pulls in torch for patches (about 1 s), and so does perform.core.fit
# for scaling on the GPU; the window needs neither, only fit's geometry.
sys.modules["perform"] = types.ModuleType("perform")
sys.modules["perform"].__path__ = [spec["package"]]
for name in ("torch", "torch.nn", "torch.nn.functional"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["torch"].nn = sys.modules["torch.nn"]
sys.modules["torch.nn"].functional = sys.modules["torch.nn.functional"]
# pyglet 2.1 asks Xinerama screens (what it finds when the server has no RandR) whether
# they are primary, which only RandR screens know.
xdisplay.XlibScreenXinerama.is_primary = False  # (before pyglet.window makes its first)
from pyglet.window import key
from perform.core.frames import Frame, Mailbox
from perform.outputs.window import WindowCounters, run_window

images = [np.load(p) for p in spec["images"]]
steps = list(spec["steps"])
mailbox, stop, counters = Mailbox("window"), threading.Event(), WindowCounters()
shots, states, puts, timed_out, stills, stats_calls = [], [], [0], [], [], []
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
        others.append({"location": list(window.get_location()), "vsync": window.vsync,
                       "shown": counters.shown, "fps": counters.fps, "puts": puts[0],
                       "replaced": mailbox.replaced, "stills": len(stills),
                       "stats_calls": list(stats_calls)})
    elif name == "close":
        window.dispatch_event("on_close")
    elif name == "stop":
        stop.set()

def stats():
    stats_calls.append(time.monotonic())
    return spec["stats"]

def on_still():
    stills.append(time.monotonic())
    if len(stills) == 2:
        raise RuntimeError("disk full")

others = []
pyglet.clock.schedule_interval(step, 0.05)
run_window(mailbox, width=spec["size"][0], height=spec["size"][1], fps=60.0, stop=stop,
           stats=stats if spec["stats"] else None, on_still=on_still, counters=counters,
           **spec["run"])
np.savez(spec["out"], *shots)
print("REPORT " + json.dumps({"states": states, "timed_out": bool(timed_out), "more": others,
                              "stop_set": stop.is_set(), "windows_open": len(pyglet.app.windows)}))
"""


@pytest.fixture(scope="module")
def x_display():
    try:
        with xvfb() as name:
            yield name
    except XvfbUnavailable as e:
        pytest.skip(f"no virtual X display for window tests: {e}")


@pytest.fixture
def two_screens():
    """A display with two monitors (Xinerama), 640x480 and 800x600, both at (0, 0)."""
    try:
        with xvfb("640x480x24", "800x600x24") as name:
            yield name
    except XvfbUnavailable as e:
        pytest.skip(f"no two-screen virtual X display: {e}")


class Played(NamedTuple):
    shots: list[np.ndarray]  # top row first
    states: list[dict]  # what the "state" steps saw of the window
    more: list[dict]  # what else they saw: location, vsync, counters, calls made
    log: str  # the child's stderr, where run_window logs


def play(display: str, tmp_path: Path, images: list[np.ndarray], steps: list, *, size=(W, H),
         stats: str | None = None, **run) -> Played:
    """Run the child on `display`; `run` are more keyword arguments for run_window."""
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"in{i}.npy"))
        np.save(paths[-1], image)
    out = tmp_path / "shots.npz"
    spec = {"images": paths, "steps": steps, "size": list(size), "out": str(out),
            "package": str(ROOT / "perform"), "stats": stats, "run": run}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISPLAY": display}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-3000:]  # run_window returned cleanly
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert not report["timed_out"], f"run_window did not return: {report}\n{proc.stderr[-3000:]}"
    # However it ended, the window is gone and the rest of the server was told to stop.
    assert report["stop_set"] and report["windows_open"] == 0, report
    with np.load(out) as shots:
        return Played([shots[f"arr_{i}"] for i in range(len(shots.files))], report["states"],
                      report["more"], proc.stderr)


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
    shots = play(x_display, tmp_path, [a], [["put", 0], ["shot"], ["stop"]]).shots
    assert shots[0].shape == (H, W, 3)
    assert np.array_equal(shots[0], a)


@pytest.mark.window
def test_a_newer_frame_replaces_the_old_one(x_display, tmp_path):
    a, b = pattern(), pattern(seed=17)[::-1].copy()
    shots = play(x_display, tmp_path, [a, b],
                 [["put", 0], ["shot"], ["put", 1], ["shot"], ["stop"]]).shots
    assert np.array_equal(shots[0], a)
    assert np.array_equal(shots[1], b)


@pytest.mark.window
def test_other_sizes_are_letterboxed_in_black(x_display, tmp_path):
    narrow = pattern(32, H, seed=3)  # a new frame size: the texture is made anew, shown 1:1
    shots = play(x_display, tmp_path, [pattern(), narrow],
                 [["put", 0], ["shot"], ["put", 1], ["shot"], ["stop"]]).shots
    assert np.array_equal(shots[1][:, 16:48], narrow)
    assert not shots[1][:, :16].any() and not shots[1][:, 48:].any()
    wide = play(x_display, tmp_path, [pattern()], [["put", 0], ["shot"], ["stop"]],
                size=(2 * W, H)).shots
    assert np.array_equal(wide[0][:, 32:96], pattern())
    assert not wide[0][:, :32].any() and not wide[0][:, 96:].any()


STRIPES = np.array([[220, 30, 30], [30, 200, 40], [20, 40, 210], [230, 220, 20]], np.uint8)


@pytest.mark.window
@pytest.mark.parametrize("fit", ["letterbox", "crop", "stretch"])
def test_fit_modes_fill_a_taller_window(x_display, tmp_path, fit):
    stripes = np.repeat(STRIPES, W // 4, axis=0)[None].repeat(H, axis=0)  # 4 columns of 16
    shot = play(x_display, tmp_path, [stripes], [["put", 0], ["shot"], ["stop"]],
                size=(W, 2 * H), fit=fit).shots[0].astype(int)
    assert shot.shape == (2 * H, W, 3)
    if fit == "letterbox":  # 1:1 between black bars of 24 rows, exact
        assert not shot[:24].any() and not shot[-24:].any()
        assert np.array_equal(shot[24:-24], stripes)
    elif fit == "crop":  # 2x: the middle two stripes fill the window, the outer ones are cut
        assert np.abs(shot[:, 2:30] - STRIPES[1]).max() <= 2
        assert np.abs(shot[:, 34:62] - STRIPES[2]).max() <= 2
    else:  # all four stripes, each 16 columns wide, from top to bottom: no black
        for i, colour in enumerate(STRIPES):
            assert np.abs(shot[:, 16 * i + 1 : 16 * i + 15] - colour).max() <= 2, i


def test_letterbox_geometry_through_placement():
    assert placement(64, 48, 64, 48, "letterbox") == (0, 0, 64, 48)
    assert placement(64, 48, 128, 48, "letterbox") == (32, 0, 64, 48)
    assert placement(64, 48, 64, 96, "letterbox") == (0, 24, 64, 48)
    assert placement(64, 48, 1280, 1024, "letterbox") == (0, 32, 1280, 960)


@pytest.mark.window
def test_f_toggles_fullscreen_and_escape_only_leaves_it(x_display, tmp_path):
    a = pattern(gradients=False)  # flat quadrants, so smooth scaling keeps texel centres
    shots, states, *_ = play(x_display, tmp_path, [a], [
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
def test_starting_fullscreen_fills_the_screen_and_escape_gives_the_window(x_display, tmp_path):
    a = pattern(gradients=False)
    played = play(x_display, tmp_path, [a], [
        ["put", 0], ["state"], ["shot"], ["key", "ESCAPE"], ["state"], ["shot"], ["stop"]],
        fullscreen=True)
    assert [(s["fullscreen"], s["size"]) for s in played.states] == [
        (True, [1280, 1024]), (False, [W, H])]
    full = played.shots[0]  # scaled to the screen, not a window-sized picture in its middle
    assert not full[:32].any() and not full[-32:].any()
    assert np.abs(full[32 + 10 : 32 + 960 : 20, 10::20].astype(int) - a).max() <= 6
    assert np.array_equal(played.shots[1], a)


@pytest.mark.window
@pytest.mark.parametrize("end", [["close"], ["key", "CTRL_Q"]], ids=["close", "ctrl_q"])
def test_closing_the_window_or_ctrl_q_sets_stop(x_display, tmp_path, end):
    play(x_display, tmp_path, [pattern()], [["put", 0], ["shot"], end])  # play checks both


@pytest.mark.window
def test_i_toggles_the_stats_overlay_in_the_top_left_corner(x_display, tmp_path):
    size = (320, 240)
    grey = np.full((size[1], size[0], 3), 100, np.uint8)
    text = "512x512 · 59.8 fps · p99 17.1 ms · dropped 3"
    shown_for = 20  # steps of 50 ms: a second of overlay, some 60 frames
    played = play(x_display, tmp_path, [grey], [
        ["put", 0], ["shot"], ["state"], ["key", "I"], *[["wait"]] * shown_for, ["shot"],
        ["key", "I"], ["state"], ["shot"], ["wait"], ["wait"], ["state"], ["stop"]],
        size=size, stats=text)
    off, on, off_again = (shot.astype(int) for shot in played.shots)
    assert np.array_equal(off, grey) and np.array_equal(off_again, grey)
    corner = on[:24, :200]  # a dark backdrop with light text on it
    assert (corner < 50).all(axis=-1).mean() > 0.5, "no translucent dark backdrop"
    assert (corner > 180).all(axis=-1).sum() > 100, "no text on the backdrop"
    assert np.array_equal(on[60:], grey[60:]), "the overlay covers more than its corner"
    hidden, shown, after = (m["stats_calls"] for m in played.more)
    assert not hidden and after == shown  # asked only while shown,
    assert len(shown) >= 3 and min(np.diff(shown)) >= 0.24, shown  # at most 4 times a second
    assert played.more[0]["vsync"] is True  # the default


@pytest.mark.window
def test_the_overlay_can_start_shown_with_the_windows_own_counts(x_display, tmp_path):
    size = (320, 240)
    grey = np.full((size[1], size[0], 3), 100, np.uint8)
    on, off = play(x_display, tmp_path, [grey], [["put", 0], ["shot"], ["key", "I"], ["shot"],
                                                 ["stop"]], size=size, overlay=True).shots
    assert (on[:24, :120] > 180).all(axis=-1).sum() > 50  # "320x240 · ... fps · shown 1"
    assert np.array_equal(on[60:], grey[60:]) and np.array_equal(off, grey)


@pytest.mark.window
def test_s_asks_for_a_still_and_a_failing_one_does_not_end_the_window(x_display, tmp_path):
    played = play(x_display, tmp_path, [pattern()], [
        ["put", 0], ["key", "S"], ["state"], ["key", "S"], ["state"], ["key", "S"], ["state"],
        ["shot"], ["stop"]])
    assert [m["stills"] for m in played.more] == [1, 2, 3]  # once a press; the 2nd raised
    assert all(s["open"] and not s["stop"] for s in played.states)
    assert "taking a still failed" in played.log and "RuntimeError: disk full" in played.log
    assert np.array_equal(played.shots[0], pattern())  # and it still shows frames


@pytest.mark.window
def test_counters_count_shown_frames_and_vsync_can_be_turned_off(x_display, tmp_path):
    puts = 30  # one every 50 ms: 20 frames a second
    played = play(x_display, tmp_path, [pattern(), pattern(seed=5)],
                  [*[["put", i % 2] for i in range(puts)], ["state"], ["stop"]], vsync=False)
    seen = played.more[0]
    assert seen["vsync"] is False
    assert seen["puts"] == puts and seen["shown"] + seen["replaced"] in (puts - 1, puts)
    assert seen["shown"] >= puts - 5, seen  # the window took almost every frame
    assert 10 <= seen["fps"] <= 30, seen


@pytest.mark.window
def test_a_screen_that_is_not_there_is_logged_and_the_default_used(x_display, tmp_path):
    played = play(x_display, tmp_path, [pattern()], [["put", 0], ["state"], ["shot"], ["stop"]],
                  screen=3)
    assert "there is no screen 3" in played.log
    assert "screens here: 0: 1280x1024 at (0, 0)" in played.log
    assert played.states[0]["open"] and played.more[0]["location"] == [0, 0]
    assert np.array_equal(played.shots[0], pattern())


@pytest.mark.window
def test_screen_picks_the_monitor_windowed_and_fullscreen(two_screens, tmp_path):
    # Xvfb puts both monitors at (0, 0), so they tell apart by size: 640x480 and 800x600.
    windowed = play(two_screens, tmp_path, [pattern()], [
        ["put", 0], ["state"], ["key", "F"], ["state"], ["stop"]], screen=1)
    assert windowed.more[0]["location"] == [(800 - W) // 2, (600 - H) // 2]  # centred on 1
    assert windowed.states[1]["fullscreen"] and windowed.states[1]["size"] == [800, 600]
    full = play(two_screens, tmp_path, [pattern()], [["put", 0], ["state"], ["stop"]],
                screen=1, fullscreen=True)
    assert full.states[0]["fullscreen"] and full.states[0]["size"] == [800, 600]
    first = play(two_screens, tmp_path, [pattern()], [["put", 0], ["state"], ["stop"]],
                 screen=0, fullscreen=True)
    assert first.states[0]["size"] == [640, 480]


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

"""On-screen output: a pyglet window that shows the newest frame of a Mailbox.

pyglet must own the main thread (macOS insists), so `run_window` blocks there while the
asyncio server and the render thread live in other threads; the `stop` event ties their
lifetimes together. pyglet is imported inside functions so that importing this module
works on a machine without a display.

Keys: F toggles fullscreen; Escape only leaves fullscreen (an accidental Escape on stage
must not end the show); I toggles a small stats overlay; S asks the show for a still
(`on_still`); Ctrl+Q quits, as does closing the window.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perform.core.fit import FITS, placement
from perform.core.frames import Frame, Mailbox
from perform.outputs.base import OutputSpec, check_options, flag

log = logging.getLogger(__name__)

FPS_SPAN = 2.0  # seconds of shown frames that WindowCounters.fps is measured over
OVERLAY_REFRESH = 0.25  # the overlay asks `stats` for new text at most this often


def display_available() -> bool:
    """Whether a window can be opened here, so the CLI can default to one."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class WindowCounters:
    """What the window showed. The window's thread writes it; any thread may read `shown`
    (frames put on screen) and `fps` (frames shown a second over the last ~2 s)."""

    shown: int = 0
    fps: float = 0.0
    # seconds from a frame's publication to its being drawn, for the latest frames shown
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=600), repr=False,
                                  compare=False)
    _times: deque[float] = field(default_factory=deque, init=False, repr=False, compare=False)
    _since: float | None = field(default=None, init=False, repr=False, compare=False)

    def note(self, now: float, shown: bool) -> None:
        """Called once a tick; `shown` when a new frame went up, so fps falls when none do."""
        if shown:
            self.shown += 1
            self._times.append(now)
            self._since = now if self._since is None else self._since
        while self._times and now - self._times[0] > FPS_SPAN:
            self._times.popleft()
        span = min(FPS_SPAN, now - self._since) if self._since is not None else 0.0
        self.fps = len(self._times) / span if span >= 0.1 else 0.0


# `--output window:...` options, as the show passes them on to `run_window`
OPTIONS = {"screen": "monitor number (0, 1, ...)", "fullscreen": "start fullscreen (F toggles)",
           "vsync": "on (default) or off", "overlay": "start with the stats overlay (I toggles)",
           "fit": f"{' | '.join(FITS)} (default letterbox)"}


def window_settings(spec: OutputSpec) -> dict[str, Any]:
    """`--output window:screen=1,fullscreen,vsync=off` as keyword arguments of `run_window`;
    a wrong option or value is a clear ValueError before anything opens."""
    check_options(spec, OPTIONS)
    values = spec.options
    try:
        settings: dict[str, Any] = {name: flag(values[name])
                                    for name in ("fullscreen", "vsync", "overlay")
                                    if name in values}
        if "screen" in values:
            settings["screen"] = int(values["screen"])
    except ValueError as exc:
        raise ValueError(f"--output window: {exc}") from None
    if "fit" in values:
        if values["fit"] not in FITS:
            raise ValueError(f"--output window: fit is one of {', '.join(FITS)}")
        settings["fit"] = values["fit"]
    return settings


def run_window(mailbox: Mailbox, *, width: int, height: int, fps: float, title: str = "perform",
               stop: threading.Event, fullscreen: bool = False, screen: int | None = None,
               vsync: bool = True, fit: str = "letterbox", overlay: bool = False,
               stats: Callable[[], str] | None = None,
               on_still: Callable[[], None] | None = None,
               counters: WindowCounters | None = None) -> None:
    """Show frames from `mailbox` until the window closes or `stop` is set; sets `stop` on exit.

    Must be called from the main thread. `screen` picks a monitor by its index in pyglet's
    `get_screens()` (a missing one is logged and the default used); `fit` is how frames of
    another size fill the window (see `perform.core.fit`); `overlay` starts with the stats
    overlay shown, whose text comes from `stats` (the window's own counts without one);
    `counters`, when given, is kept up to date for other threads to read.
    """
    import pyglet

    placement(1, 1, 1, 1, fit)  # an unknown fit fails here, before any window opens
    monitor = _pick_screen(pyglet, screen)
    # Opened windowed, then made fullscreen: pyglet's fullscreen at a given size would show
    # a window-sized picture in the middle of the monitor, and F should come back to it.
    window = _open_window(pyglet, width=width, height=height, caption=title, resizable=True,
                          vsync=vsync, screen=monitor, visible=False)
    if monitor is not None:  # centred on the chosen monitor
        window.set_location(monitor.x + (monitor.width - window.width) // 2,
                            monitor.y + (monitor.height - window.height) // 2)
    if fullscreen:
        window.set_fullscreen(True)
    window.set_visible(True)
    state = _Screen(pyglet, window, mailbox, stop, fit=fit, overlay=overlay, stats=stats,
                    on_still=on_still,
                    counters=counters if counters is not None else WindowCounters())
    window.push_handlers(state)
    pyglet.clock.schedule_interval(state.tick, 1.0 / fps)
    try:
        pyglet.app.run(None)  # `tick` draws, so frames are shown as soon as they are taken
    finally:
        state.quit()


def _pick_screen(pyglet, index: int | None):
    """pyglet's screen at `index`, or None (the default screen) with a warning if none is."""
    if index is None:
        return None
    screens = pyglet.display.get_display().get_screens()
    if 0 <= index < len(screens):
        return screens[index]
    there = "; ".join(f"{i}: {s.width}x{s.height} at ({s.x}, {s.y})"
                      for i, s in enumerate(screens))
    log.warning("there is no screen %d, using the default one; screens here: %s", index, there)
    return None


def _open_window(pyglet, **kwargs):
    """Ask for 8 bits a channel so frames show exactly; take what there is if that is refused."""
    config = pyglet.gl.Config(double_buffer=True, red_size=8, green_size=8, blue_size=8,
                              major_version=3, minor_version=3)
    try:
        return pyglet.window.Window(config=config, **kwargs)
    except pyglet.window.NoSuchConfigException:
        return pyglet.window.Window(**kwargs)


class _Screen:
    """The window's state and event handlers: one texture, re-created only on a size change."""

    def __init__(self, pyglet, window, mailbox: Mailbox, stop: threading.Event, *, fit: str,
                 overlay: bool, stats: Callable[[], str] | None,
                 on_still: Callable[[], None] | None, counters: WindowCounters) -> None:
        self.pyglet, self.window, self.mailbox, self.stop = pyglet, window, mailbox, stop
        self.fit, self.stats, self.on_still, self.counters = fit, stats, on_still, counters
        self.sprite = None
        self.overlay_on, self.refresh_at = overlay, 0.0
        # The overlay: one line of text a label, over a translucent dark backdrop.
        self.batch, self.labels = pyglet.graphics.Batch(), []
        self.front = pyglet.graphics.Group(order=1)
        self.backdrop = pyglet.shapes.Rectangle(0, 0, 1, 1, color=(0, 0, 0, 170),
                                                batch=self.batch,
                                                group=pyglet.graphics.Group(order=0))

    def tick(self, dt: float) -> None:
        if self.stop.is_set():
            self.quit()
            return
        now = time.monotonic()
        self.window.switch_to()
        frame = self.mailbox.take_nowait()
        if frame is not None:
            self.upload(frame)
        if self.overlay_on and now >= self.refresh_at:
            self.refresh_overlay(now)
        self.window.draw(dt)
        self.counters.note(now, shown=frame is not None)
        if frame is not None:
            self.counters.latency.append(time.monotonic() - frame.rendered_at)

    def upload(self, frame: Frame) -> None:
        image = self.pyglet.image
        # GL rows run bottom-up; the frame's run top-down.
        rows = np.ascontiguousarray(frame.image[::-1]).tobytes()
        old = self.sprite.image if self.sprite is not None else None
        if old is None or (old.width, old.height) != (frame.width, frame.height):
            texture = image.Texture.create(frame.width, frame.height)
            if self.sprite is None:
                self.sprite = self.pyglet.sprite.Sprite(texture)
            else:
                self.sprite.image = texture
        self.sprite.image.blit_into(image.ImageData(frame.width, frame.height, "RGB", rows),
                                    0, 0, 0)

    def refresh_overlay(self, now: float) -> None:
        """New text from `stats`, laid out in the top-left corner; labels are kept and reused."""
        self.refresh_at = now + OVERLAY_REFRESH
        try:
            text = self.stats() if self.stats is not None else self.own_stats()
        except Exception as e:  # a broken stats callback must not take the window down
            text = f"stats failed: {e!r}"
        lines = text.splitlines() or [""]
        while len(self.labels) > len(lines):
            self.labels.pop().delete()
        while len(self.labels) < len(lines):
            self.labels.append(self.pyglet.text.Label(
                "", font_size=10, color=(255, 255, 255, 255), anchor_y="top",
                batch=self.batch, group=self.front))
        pad, top = 6, self.window.height
        for i, (label, line) in enumerate(zip(self.labels, lines, strict=True)):
            if label.text != line:
                label.text = line
            label.position = (pad, top - pad - i * label.content_height, 0)
        width = max(label.content_width for label in self.labels) + 2 * pad
        height = sum(label.content_height for label in self.labels) + 2 * pad
        self.backdrop.position, self.backdrop.width, self.backdrop.height = \
            (0, top - height), width, height

    def own_stats(self) -> str:
        size = f"{self.sprite.image.width}x{self.sprite.image.height}" if self.sprite else "-"
        return f"{size} · {self.counters.fps:.1f} fps · shown {self.counters.shown}"

    def on_draw(self) -> None:
        gl = self.pyglet.gl
        gl.glClearColor(0.0, 0.0, 0.0, 1.0)
        self.window.clear()
        if self.sprite is not None:
            self.draw_frame(gl)
        if self.overlay_on:
            self.batch.draw()

    def draw_frame(self, gl) -> None:
        texture = self.sprite.image
        fb_w, fb_h = self.window.get_framebuffer_size()
        x, y, w, h = placement(texture.width, texture.height, fb_w, fb_h, self.fit)
        # 1:1 gets NEAREST so every pixel is exact; any other scale is smoothed.
        filtering = gl.GL_NEAREST if (w, h) == (texture.width, texture.height) else gl.GL_LINEAR
        gl.glBindTexture(texture.target, texture.id)
        gl.glTexParameteri(texture.target, gl.GL_TEXTURE_MIN_FILTER, filtering)
        gl.glTexParameteri(texture.target, gl.GL_TEXTURE_MAG_FILTER, filtering)
        # The projection is in window units, which differ from pixels on HiDPI screens.
        ratio = fb_w / max(self.window.width, 1)
        self.sprite.position = (x / ratio, y / ratio, 0)
        self.sprite.scale_x = w / texture.width / ratio
        self.sprite.scale_y = h / texture.height / ratio
        self.sprite.draw()

    def on_resize(self, width: int, height: int) -> None:
        self.refresh_at = 0.0  # the overlay follows the top edge on the next tick

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        key = self.pyglet.window.key
        if symbol == key.F:
            self.window.set_fullscreen(not self.window.fullscreen)
        elif symbol == key.ESCAPE and self.window.fullscreen:
            self.window.set_fullscreen(False)
        elif symbol == key.Q and modifiers & (key.MOD_CTRL | key.MOD_ACCEL):
            self.quit()
        elif symbol == key.I:
            self.overlay_on, self.refresh_at = not self.overlay_on, 0.0
        elif symbol == key.S and self.on_still is not None:
            try:
                self.on_still()
            except Exception:  # a failed still is the show's problem, not the window's
                log.exception("taking a still failed; the window carries on")
        return True  # handled: keeps pyglet's default Escape-closes-the-window away

    def on_close(self) -> bool:
        self.quit()
        return True

    def quit(self) -> None:
        """Close the window and end pyglet's loop; the rest of the server follows `stop`."""
        self.stop.set()
        self.pyglet.clock.unschedule(self.tick)
        if self.sprite is not None:
            self.sprite.delete()
            self.sprite = None
        self.window.close()
        self.pyglet.app.exit()

"""On-screen output: a pyglet window that shows the newest frame of a Mailbox.

pyglet must own the main thread (macOS insists), so `run_window` blocks there while the
asyncio server and the render thread live in other threads; the `stop` event ties their
lifetimes together. pyglet is imported inside functions so that importing this module
works on a machine without a display.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from perform.core.frames import Frame, Mailbox


def display_available() -> bool:
    """Whether a window can be opened here, so the CLI can default to one."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def letterbox(image_w: int, image_h: int, area_w: int, area_h: int) -> tuple[int, int, int, int]:
    """The largest aspect-keeping rectangle (x, y, w, h) centred in the area, in whole pixels."""
    scale = min(area_w / image_w, area_h / image_h)
    w, h = max(1, round(image_w * scale)), max(1, round(image_h * scale))
    return (area_w - w) // 2, (area_h - h) // 2, w, h


def run_window(mailbox: Mailbox, *, width: int, height: int, fps: float, title: str = "perform",
               stop: threading.Event, fullscreen: bool = False) -> None:
    """Show frames from `mailbox` until the window closes or `stop` is set; sets `stop` on exit.

    Must be called from the main thread. Keys: F toggles fullscreen, Escape only leaves it
    (an accidental Escape on stage must not end the show), Ctrl+Q quits.
    """
    import pyglet

    window = _open_window(pyglet, width=width, height=height, caption=title, resizable=True,
                          fullscreen=fullscreen)
    screen = _Screen(pyglet, window, mailbox, stop)
    window.push_handlers(screen)
    pyglet.clock.schedule_interval(screen.tick, 1.0 / fps)
    try:
        pyglet.app.run(None)  # `tick` draws, so frames are shown as soon as they are taken
    finally:
        screen.quit()


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

    def __init__(self, pyglet, window, mailbox: Mailbox, stop: threading.Event) -> None:
        self.pyglet, self.window, self.mailbox, self.stop = pyglet, window, mailbox, stop
        self.sprite = None

    def tick(self, dt: float) -> None:
        if self.stop.is_set():
            self.quit()
            return
        frame = self.mailbox.take_nowait()
        if frame is not None:
            self.window.switch_to()
            self.upload(frame)
        self.window.draw(dt)

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

    def on_draw(self) -> None:
        gl = self.pyglet.gl
        gl.glClearColor(0.0, 0.0, 0.0, 1.0)
        self.window.clear()
        if self.sprite is None:
            return
        texture = self.sprite.image
        fb_w, fb_h = self.window.get_framebuffer_size()
        x, y, w, h = letterbox(texture.width, texture.height, fb_w, fb_h)
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

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        key = self.pyglet.window.key
        if symbol == key.F:
            self.window.set_fullscreen(not self.window.fullscreen)
        elif symbol == key.ESCAPE and self.window.fullscreen:
            self.window.set_fullscreen(False)
        elif symbol == key.Q and modifiers & (key.MOD_CTRL | key.MOD_ACCEL):
            self.quit()
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

"""A live show: every part of the server wired together, started in order, stopped in reverse.

Threads: the asyncio loop owns all I/O (OSC, HTTP, file watching) and never renders; the
render thread runs the `Engine`; a pyglet window, when there is one, owns the main thread
(macOS requires it). They share only the param store, immutable frames in latest-wins
mailboxes, and `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import watchfiles
from aiohttp import web

from perform.core.frames import Mailbox
from perform.core.loader import Patch, PatchError, PatchLoadError, load_patch
from perform.core.params import ParamStore
from perform.core.stats import FrameStats
from perform.engine import Engine
from perform.io.osc import OscFeedback, OscStats, serve_osc
from perform.io.web import JpegPreview, make_app
from perform.models.host import ModelHost
from perform.patch import Ctx

log = logging.getLogger("perform")
T = TypeVar("T")


@dataclass(frozen=True)
class ShowConfig:
    patch: Path
    width: int = 512
    height: int = 512
    fps: float = 60.0
    host: str = "127.0.0.1"
    osc_port: int = 9000
    http_port: int = 8080
    window: bool = False
    device: str = "auto"
    bpm: float = 120.0
    feedback: tuple[tuple[str, int], ...] = ()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Show:
    def __init__(self, config: ShowConfig) -> None:
        self.config = config
        self.patch_path = config.patch.resolve()
        self.device = pick_device(config.device)
        self.store = ParamStore()
        self.stats = FrameStats()
        self.osc_stats = OscStats()
        self.feedback = OscFeedback()
        for host, port in config.feedback:
            self.feedback.add_target(host, port)
        self.models = ModelHost(config.width, config.height, self.device)
        self.preview_box = Mailbox("preview")
        self.window_box = Mailbox("window")
        outputs = [self.preview_box] + ([self.window_box] if config.window else [])
        self.engine = Engine(self.store, self.models, width=config.width, height=config.height,
                             fps=config.fps, bpm=config.bpm, outputs=outputs, stats=self.stats,
                             on_error=self._announce, on_swap=self._swapped)
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.osc_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.attempts = 0  # loads tried; a load's version is its attempt number
        self._offered = 0  # the newest version handed to the engine
        self._loads: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the asyncio side ---------------------------------------------------------------

    async def serve(self) -> None:
        """Run until `self.stop` is set; everything started here is stopped in reverse."""
        self._loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.feedback.close)
            # the first frame wants the patch, but a patch that never loads must not stop the show
            await asyncio.wait({self._start_load()}, timeout=10.0)
            render = threading.Thread(target=self.engine.run, args=(self.stop,),
                                      name="perform-render", daemon=True)
            render.start()
            stack.push_async_callback(_join, render)
            stack.callback(self.stop.set)

            try:
                transport = await serve_osc(self.store, self.config.host,
                                            self.config.osc_port, self.osc_stats)
            except OSError as exc:
                raise OSError(exc.errno, f"OSC port udp {self.config.host}:"
                                         f"{self.config.osc_port}: {exc.strerror}") from exc
            stack.callback(transport.close)
            self.osc_address = transport.get_extra_info("sockname")[:2]

            preview = JpegPreview(self.preview_box)
            runner = web.AppRunner(make_app(self.store, self.state, preview),
                                   handle_signals=False, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(preview.close)  # ends open streams before the cleanup
            site = web.TCPSite(runner, self.config.host, self.config.http_port)
            await site.start()
            self.http_address = tuple(runner.addresses[0][:2])

            watcher = asyncio.create_task(self._watch())
            stack.push_async_callback(_cancel, watcher)
            await asyncio.sleep(0)  # the watcher registers its inotify watch before any await
            self.ready.set()
            log.info("perform: patch %s | OSC udp://%s:%d | preview http://%s:%d/",
                     self.patch_path, *self.osc_address, *self.http_address)
            await asyncio.to_thread(self.stop.wait)

    async def load(self) -> None:
        """Load the patch file off the event loop and hand it to the render thread.

        Loads may overlap (a save that hangs in a `while True:` must not block the next
        save); only a load newer than the last one handed over gets through.
        """
        self.attempts += 1
        version = self.attempts
        try:
            patch = await _in_daemon_thread(load_patch, self.patch_path, version, self.models,
                                            self._setup_ctx)
        except PatchLoadError as exc:
            if version > self._offered:
                self.engine.report(exc.error)
            return
        if version > self._offered:
            self._offered = version
            self.engine.offer(patch)

    async def _watch(self) -> None:
        target = self.patch_path
        async for changes in watchfiles.awatch(target.parent, step=10, debounce=400,
                                               recursive=False):
            if any(Path(path) == target for _, path in changes) and target.exists():
                self._start_load()

    def _start_load(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self.load())
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)
        return task

    def _setup_ctx(self) -> Ctx:
        c = self.config
        return Ctx(t=0.0, frame=0, dt=0.0, fps=c.fps, width=c.width, height=c.height, bpm=c.bpm,
                   params=self.store.snapshot(0.0)[0], state=self.engine.state)

    def _announce(self, error: PatchError) -> None:
        """Tell the performer, from whichever thread found the error."""
        log.error("patch error: %s", error)
        args = (error.file, error.line or 0, error.message)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.feedback.send_error, *args)

    def _swapped(self, patch: Patch) -> None:
        keep = set(patch.model_keys)
        if self.engine.fallback is not None:
            keep |= self.engine.fallback.model_keys
        self.models.keep_only(keep)
        log.info("patch version %d running", patch.version)

    def state(self) -> dict[str, Any]:
        engine = self.engine
        active, error = engine.active, engine.error
        if active is None:
            status = "no patch"
        elif error is None:
            status = "ok"
        else:
            status = "error" if active.version >= error.version else "fallback"
        return {
            "patch": {"file": str(self.patch_path), "version": active.version if active else None,
                      "status": status, "error": error.as_dict() if error else None},
            "params": self.store.describe(),
            "models": self.models.loaded(),
            "device": str(self.device),
            "size": [self.config.width, self.config.height],
            "frames": {**self.stats.summary(), "target_fps": self.config.fps},
            "osc": self.osc_stats.as_dict(),
        }

    # -- the blocking entry point ---------------------------------------------------------

    def run(self) -> None:
        """Serve until Ctrl-C (or the window closes); the window, if any, gets the main thread."""
        previous = {sig: signal.signal(sig, lambda *_: self.stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not self.config.window:
                asyncio.run(self.serve())
                return
            from perform.outputs.window import run_window

            server = threading.Thread(target=asyncio.run, args=(self.serve(),),
                                      name="perform-io")
            server.start()
            self.ready.wait(timeout=30)
            run_window(self.window_box, width=self.config.width, height=self.config.height,
                       fps=self.config.fps, title=f"perform · {self.patch_path.name}",
                       stop=self.stop)
            self.stop.set()
            while server.is_alive():
                server.join(timeout=0.1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _in_daemon_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Like `asyncio.to_thread`, but a call that never returns cannot hold up the exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = function(*args)
        except BaseException as exc:
            outcome = functools.partial(future.set_exception, exc)
        else:
            outcome = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=work, name="perform-load", daemon=True).start()
    return future


async def _join(thread: threading.Thread, timeout: float = 2.0) -> None:
    await asyncio.to_thread(thread.join, timeout)
    if thread.is_alive():
        log.warning("%s is stuck (a patch that never returns?); leaving it behind", thread.name)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def wait_ready(show: Show, timeout: float = 30.0) -> None:
    """Block until `show` serves, or raise; for tools and tests that run it in a thread."""
    deadline = time.monotonic() + timeout
    while not show.ready.wait(0.05):
        if show.stop.is_set() or time.monotonic() > deadline:
            raise RuntimeError("the show did not start")

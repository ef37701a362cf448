"""A live show: every part of the server wired together, started in order, stopped in reverse.

Threads: the asyncio loop owns all I/O (OSC, HTTP, file watching) and never renders; the
render thread runs the `Engine`; a pyglet window, when there is one, owns the main thread
(macOS requires it). They share only the param store, immutable frames in latest-wins
mailboxes, and `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import watchfiles
from aiohttp import web

from perform.audio.listen import AudioConfig, AudioTempo, Listening
from perform.audio.sources import AudioError
from perform.control import COMMANDS, server_commands
from perform.core.aio import cancel, in_daemon_thread, join_thread
from perform.core.frames import Mailbox
from perform.core.loader import Patch, PatchError, PatchLoadError, load_patch
from perform.core.params import ParamStore
from perform.core.stats import FrameStats, percentile_ms
from perform.engine import Engine
from perform.io.discovery import advertise
from perform.io.editor import editor_routes
from perform.io.live import LiveHub
from perform.io.osc import OscFeedback, OscRouter, OscServer, OscStats, Peer
from perform.io.oscquery import OscQuery
from perform.io.web import JpegPreview, make_app, token_check
from perform.midi.learn import LearnError
from perform.midi.mapping import MappingError
from perform.midi.rig import Learned, MidiConfig, MidiRig
from perform.models.host import ModelHost
from perform.outputs import make_output
from perform.outputs.base import OutputSpec, RunningOutput
from perform.outputs.recording import save_png
from perform.outputs.window import WindowCounters, window_settings
from perform.patch import Ctx
from perform.show_scenes import ShowScenes
from perform.tempo import FixedTempo
from perform.tempo.link import LinkTempo

log = logging.getLogger("perform")


@dataclass(frozen=True)
class ShowConfig:
    patch: Path
    width: int = 512
    height: int = 512
    fps: float = 60.0
    host: str = "127.0.0.1"
    osc_port: int = 9000
    http_port: int = 8080
    window: OutputSpec | None = None  # `--output window:...`; None: no window
    outputs: tuple[OutputSpec, ...] = ()  # NDI, virtual camera, recording, ...
    stills: Path | None = None  # where stills go; None: the patch folder's stills/
    device: str = "auto"
    precision: str = "auto"  # StyleGAN arithmetic: see perform.models.stylegan.model.PRECISIONS
    bpm: float = 120.0
    osc_out: tuple[tuple[str, int], ...] = ()  # feedback targets from the start
    oscquery_port: int | None = None  # None: the HTTP port + 1 (any free port if that is 0)
    zeroconf: bool = True  # advertise OSCQuery and OSC with mDNS/Bonjour
    osc_max_delay: float = 10.0  # seconds a timetagged bundle may be held
    token: str | None = None  # needed by file-writing commands when bound beyond loopback
    link: bool = False  # follow (or lead) an Ableton Link session instead of a fixed --bpm
    midi: MidiConfig | None = field(default_factory=MidiConfig)  # None: no MIDI (--no-midi)
    audio: AudioConfig | None = None  # None: no audio, ctx.audio at rest
    resume: bool = False  # start from the patch folder's scenes/autosave.json


def pick_device(name: str) -> torch.device:
    """`auto`: a CUDA GPU, else Apple's Metal (MPS), else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    return torch.device(name)


class Show:
    def __init__(self, config: ShowConfig) -> None:
        self.config = config
        self.patch_path = config.patch.resolve()
        self.patch_folder = self.patch_path.parent  # OSC may load patches from here only
        self.token = config.token or (None if _is_loopback(config.host)
                                      else secrets.token_urlsafe(12))
        self.device = pick_device(config.device)
        self.store = ParamStore()
        self.stats = FrameStats()
        self.osc_stats = OscStats()
        self.models = ModelHost(config.width, config.height, self.device, config.precision)
        self.preview_box = Mailbox("preview")
        self.window_box = Mailbox("window")
        self.control_box = Mailbox("control")  # paces feedback and OSCQuery, once a frame
        self.outputs = [RunningOutput(make_output(spec, config.width, config.height, config.fps))
                        for spec in config.outputs]
        self.window = window_settings(config.window) if config.window is not None else None
        self.window_counters = WindowCounters()
        self.scenes = ShowScenes(self)
        boxes = [self.preview_box, self.control_box] + [o.mailbox for o in self.outputs]
        self.engine = Engine(self.store, self.models, width=config.width, height=config.height,
                             fps=config.fps, tempo=FixedTempo(config.bpm),
                             outputs=boxes + ([self.window_box] if self.window is not None
                                              else []),
                             stats=self.stats,
                             on_error=self._announce, on_swap=self._swapped,
                             before_snapshot=self.scenes.fader.step,
                             state=self.scenes.fader.state)
        self.engine.sizes = {o.size for o in self.outputs
                             if o.size[:2] != (config.width, config.height)}
        self.stills_folder = config.stills or self.patch_folder / "stills"
        followers = [config.link, config.midi is not None and config.midi.clock_in,
                     config.audio is not None and config.audio.tempo]
        if sum(followers) > 1:
            raise ValueError("follow one tempo: Ableton Link, a MIDI clock or the audio's beat")
        self.midi: MidiRig | None = None
        self.listening: Listening | None = None
        self.audio_error: str | None = None
        if config.midi is not None:
            self.midi = MidiRig(self.store, config.midi, self.patch_folder,
                                self.engine.show_time, config.bpm, self._mapping_error)
            if self.midi.follower is not None:
                self.engine.tempo = self.midi.follower
        self.feedback = OscFeedback(self.store, frame_stats=self.stats.summary)
        for host, port in config.osc_out:
            self.feedback.add_target(host, port)
        self.router = OscRouter(self.store, commands=server_commands(self),
                                max_delay=config.osc_max_delay, stats=self.osc_stats)
        self.osc = OscServer(self.router)
        self.oscquery = OscQuery(self.store, self._host_info, self._ws_packet, COMMANDS)
        self.live = LiveHub(self.store, self._live_status,  # the control page
                            token_check(self.token, in_query=True))
        self._fps: tuple[float, float | None] = (0.0, None)  # (when read, fps) for the page
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.osc_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.oscquery_address: tuple[str, int] | None = None
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
            if self.config.resume:
                self.scenes.resume()
            # the first frame wants the patch, but a patch that never loads must not stop the show
            await asyncio.wait({self._start_load()}, timeout=10.0)
            if self.config.audio is not None:
                await self._listen(stack, self.config.audio)
            render = threading.Thread(target=self.engine.run, args=(self.stop,),
                                      name="perform-render", daemon=True)
            render.start()
            stack.push_async_callback(join_thread, render)
            stack.callback(self.stop.set)
            for output in self.outputs:
                output.start()
                stack.push_async_callback(asyncio.to_thread, output.close)

            host = self.config.host
            try:
                await self.osc.start(host, self.config.osc_port)
            except OSError as exc:
                raise OSError(exc.errno, f"OSC port udp/tcp {host}:"
                                         f"{self.config.osc_port}: {exc.strerror}") from exc
            stack.callback(self.osc.close)
            self.osc_address = self.osc.address

            preview = JpegPreview(self.preview_box)
            refused = token_check(self.token)
            app = make_app(self.store, self.state, preview, self._learn, self.still,
                           self.scenes, refused)
            app.add_routes(editor_routes(self.patch_folder, lambda: self.patch_path, refused,
                                         self.switch_patch))
            app.add_routes(self.live.routes())
            self.http_address = await _serve_http(stack, app, host, self.config.http_port, "HTTP")
            stack.push_async_callback(preview.close)  # ends open streams before the cleanup
            stack.push_async_callback(self.live.close)
            oscquery_port = self.config.oscquery_port
            if oscquery_port is None:
                oscquery_port = self.http_address[1] + 1 if self.config.http_port else 0
            self.oscquery_address = await _serve_http(stack, self.oscquery.app(), host,
                                                      oscquery_port, "OSCQuery")
            stack.push_async_callback(self.oscquery.close)
            if self.config.zeroconf:
                advertised = await advertise("perform", host, self.oscquery_address[1],
                                             self.osc_address[1])
                if advertised is not None:
                    stack.push_async_callback(advertised.close)

            if self.config.link:
                self._join_link(stack)
            if self.midi is not None:
                engine = self.engine
                await self.midi.start(stack, lambda: engine.tempo.reading(engine.show_time()))
            for task in (self._watch(), self._each_frame(), self.scenes.autosave()):
                stack.push_async_callback(cancel, asyncio.create_task(task))
            await asyncio.sleep(0)  # the watcher registers its inotify watch before any await
            self.ready.set()
            log.info("perform: patch %s | OSC udp+tcp://%s:%d | preview http://%s:%d/ | "
                     "OSCQuery http://%s:%d/", self.patch_path, *self.osc_address,
                     *self.http_address, *self.oscquery_address)
            if self.token is not None:
                log.warning("perform listens beyond this machine: every change over HTTP, "
                            "and /perform/patch/load, preset and scene saves, scene recalls, "
                            "stills and MIDI learn over OSC need its token, %s; the page "
                            "with it: http://%s:%d/?token=%s", self.token, *self.http_address,
                            self.token)
            await asyncio.to_thread(self.stop.wait)

    async def _each_frame(self) -> None:
        """Mirror the show once per rendered frame: OSC feedback, OSCQuery listeners and
        the control pages."""
        while True:
            frame = await self.control_box.next()
            try:
                self.feedback.publish(frame)
            except Exception:  # a bug in feedback must not stop OSCQuery's listeners
                log.exception("OSC feedback failed")
            self.oscquery.publish()  # never raises
            try:
                self.live.publish()
            except Exception:
                log.exception("the control page's feed failed")
            if self.midi is not None:
                try:
                    self.midi.each_frame(frame.t)
                except Exception:
                    log.exception("MIDI feedback failed")

    async def _listen(self, stack: contextlib.AsyncExitStack, config: AudioConfig) -> None:
        """Open the audio source; without it the show goes on with the music at rest."""
        try:
            listening = await asyncio.to_thread(config.open)
        except (AudioError, ValueError) as exc:  # no device, unreadable file, bad bands
            self.audio_error = str(exc)
            log.warning("audio off: %s", exc)
            return
        stack.push_async_callback(asyncio.to_thread, listening.close)
        self.listening = listening
        self.engine.audio = listening.at
        if config.tempo:
            self.engine.tempo = AudioTempo(listening, self.config.bpm)
        status = listening.status()
        log.info("listening to %s at %d Hz", status.get("path") or status.get("device")
                 or "the default input", status["sample_rate"])

    def _join_link(self, stack: contextlib.AsyncExitStack) -> None:
        """Take the beat from Ableton Link; without it the fixed tempo plays on."""
        try:
            link = LinkTempo(self.config.bpm)
        except RuntimeError as exc:
            log.warning("%s; staying on a fixed %g BPM", exc, self.config.bpm)
            return
        stack.callback(link.close)
        self.engine.tempo = link

    def reload(self) -> None:
        """Load the patch file again now (OSC /perform/reload); call on the event loop."""
        self._start_load()

    def patch_file(self, name: str) -> Path:
        """A patch file in the patch folder (nothing outside it); raises ValueError."""
        path = (self.patch_folder / name).resolve()
        if not path.is_relative_to(self.patch_folder):
            raise ValueError(f"{name} is outside the patch folder {self.patch_folder}")
        if path.suffix != ".py" or not path.is_file():
            raise ValueError(f"no patch file {name} in {self.patch_folder}")
        return path

    def switch_patch(self, path: Path) -> None:
        """Run another patch file; the running one draws until the new one has loaded."""
        self.patch_path = path
        self._start_load()

    async def _learn(self, param: str) -> Learned:
        """MIDI learn for HTTP: a viewer that leaves does not cancel it (it times out)."""
        if self.midi is None:
            raise LearnError("MIDI is off (--no-midi)")
        return await asyncio.shield(self.midi.learn(param))

    async def still(self) -> Path:
        """Save the frame on screen as a PNG in the stills folder; on the event loop."""
        frame = self.engine.last_frame
        if frame is None:
            raise OSError("no frame has been drawn yet")
        now = time.time()
        stamp = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"
        path = self.stills_folder / f"still-{stamp}-frame{frame.seq}.png"
        await asyncio.to_thread(_save_still, frame.image, path)
        log.info("still saved: %s", path)
        return path

    def _still_from_window(self) -> None:
        """The window's S key, on the main thread: the still is saved on the loop."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._log_still(), self._loop)

    async def _log_still(self) -> None:
        try:
            await self.still()
        except OSError as exc:
            log.warning("no still saved: %s", exc)

    def _host_info(self) -> dict[str, Any]:
        host, port = self.osc_address or (self.config.host, self.config.osc_port)
        return {"NAME": f"perform ({self.patch_path.name})", "OSC_IP": host, "OSC_PORT": port,
                "OSC_TRANSPORT": "UDP"}

    def _ws_packet(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        self.router.receive(data, Peer("websocket", 0, "ws", reply))

    async def load(self) -> None:
        """Load the patch file off the event loop and hand it to the render thread.

        Loads may overlap (a save that hangs in a `while True:` must not block the next
        save); only a load newer than the last one handed over gets through.
        """
        self.attempts += 1
        version = self.attempts
        try:
            patch = await in_daemon_thread(load_patch, self.patch_path, version, self.models,
                                            self._setup_ctx)
        except PatchLoadError as exc:
            if version > self._offered:
                self.engine.report(exc.error)
            return
        if version > self._offered:
            self._offered = version
            self.engine.offer(patch)

    async def _watch(self) -> None:
        async for changes in watchfiles.awatch(self.patch_folder, step=10, debounce=400,
                                               recursive=False):
            target = self.patch_path  # /perform/patch/load may have switched it
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
        self._send_error(error.file, error.line, error.message)

    def _mapping_error(self, error: MappingError) -> None:
        self._send_error(error.file, error.line, error.message)  # the rig has logged it

    def _send_error(self, file: str, line: int | None, message: str) -> None:
        """OSC /perform/error to the feedback targets, from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.feedback.send_error, file, line or 0, message)

    def _swapped(self, patch: Patch) -> None:
        keep = set(patch.model_keys)
        if self.engine.fallback is not None:
            keep |= self.engine.fallback.model_keys
        self.models.keep_only(keep)
        log.info("patch version %d running", patch.version)
        self.scenes.patch_declared(patch)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.feedback.send, "/perform/patch",
                                            str(patch.path), patch.version)

    def _patch_state(self) -> dict[str, Any]:
        engine = self.engine
        active, error = engine.active, engine.error
        if active is None:
            status = "no patch"
        elif error is None:
            status = "ok"
        else:
            status = "error" if active.version >= error.version else "fallback"
        return {"file": str(self.patch_path), "version": active.version if active else None,
                "status": status, "error": error.as_dict() if error else None}

    def _live_status(self) -> dict[str, Any]:
        """The control page's status, each frame: the patch, and the fps read twice a second."""
        now = time.monotonic()
        if now - self._fps[0] >= 0.5:
            self._fps = (now, self.stats.summary()["fps"])
        return {**self._patch_state(), "fps": self._fps[1]}

    def state(self) -> dict[str, Any]:
        return {
            "patch": self._patch_state(),
            "params": self.store.describe(),
            "models": self.models.loaded(),
            "device": str(self.device),
            "size": [self.config.width, self.config.height],
            "frames": {**self.stats.summary(), "target_fps": self.engine.fps},
            "osc": {**self.osc_stats.as_dict(), "held": self.router.held,
                    "tcp_clients": len(self.osc.clients), "tcp_refused": self.osc.refused,
                    "kernel_dropped": self.osc.kernel_drops(),
                    "feedback": {"targets": [f"{h}:{p}" for h, p in self.feedback.targets],
                                 "sent": self.feedback.sent, "errors": self.feedback.errors,
                                 "last_error": self.feedback.last_error}},
            "ports": self.ports(),
            **self.scenes.state(),
            "tempo": self._tempo_state(),
            "midi": self.midi.stats() if self.midi is not None else None,
            "outputs": self._outputs_state(),
            "audio": (self.listening.status() if self.listening is not None else
                      None if self.config.audio is None else
                      {"state": "off", "last_error": self.audio_error}),
        }

    def _outputs_state(self) -> list[dict[str, Any]]:
        found = [output.state() for output in self.outputs]
        if self.window is not None:
            counters = self.window_counters
            latency = list(counters.latency)
            found.insert(0, {"output": "window", "kind": "window", "status": "running",
                             "fps": round(counters.fps, 2), "sent": counters.shown,
                             "dropped": self.window_box.replaced,
                             "latency_ms_p50": percentile_ms(latency, 50),
                             "latency_ms_p99": percentile_ms(latency, 99)})
        return found

    def _overlay(self) -> str:
        """The window's stats overlay: the render, then each output's troubles."""
        f = self.stats.summary()
        lines = [f"{self.config.width}x{self.config.height} · {f['fps'] or 0:.1f} fps · "
                 f"p99 {f['frame_ms_p99'] or 0:.1f} ms · dropped {f['dropped']}"]
        for output in self.outputs:
            state = output.state()
            lines.append(f"{output.output.kind}: {state['status']} · {state['fps'] or 0:.1f} fps"
                         f" · dropped {state['dropped']}")
        return "\n".join(lines)

    def _tempo_state(self) -> dict[str, Any]:
        tempo, reading = self.engine.tempo, self.engine.last_tempo
        source = {FixedTempo: "fixed", LinkTempo: "link", AudioTempo: "audio"}.get(
            type(tempo), "midi clock")
        state = {"source": source, "bpm": round(reading.bpm, 3),
                 "beat": round(reading.beat, 3), "running": reading.running}
        if isinstance(tempo, LinkTempo):
            state["peers"] = tempo.peers
        return state

    def ports(self) -> dict[str, int | None]:
        """Every port in use, for the status page and people wiring up a rig."""
        def port(address: tuple[str, int] | None) -> int | None:
            return address[1] if address else None
        osc = port(self.osc_address)
        return {"osc_udp": osc, "osc_tcp": osc, "http": port(self.http_address),
                "oscquery": port(self.oscquery_address)}

    # -- the blocking entry point ---------------------------------------------------------

    def run(self) -> None:
        """Serve until Ctrl-C (or the window closes); the window, if any, gets the main thread."""
        previous = {sig: signal.signal(sig, lambda *_: self.stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.window is None:
                asyncio.run(self.serve())
                return
            from perform.outputs.window import run_window

            server = threading.Thread(target=asyncio.run, args=(self.serve(),),
                                      name="perform-io")
            server.start()
            self.ready.wait(timeout=30)
            run_window(self.window_box, width=self.config.width, height=self.config.height,
                       fps=self.config.fps, title=f"perform · {self.patch_path.name}",
                       stop=self.stop, stats=self._overlay, on_still=self._still_from_window,
                       counters=self.window_counters, **self.window)
            self.stop.set()
            while server.is_alive():
                server.join(timeout=0.1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def _serve_http(stack: contextlib.AsyncExitStack, app: web.Application, host: str,
                      port: int, what: str) -> tuple[str, int]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise OSError(exc.errno, f"{what} port tcp {host}:{port}: {exc.strerror}") from exc
    return tuple(runner.addresses[0][:2])  # type: ignore[return-value]


def _save_still(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(image, path)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def wait_ready(show: Show, timeout: float = 30.0) -> None:
    """Block until `show` serves, or raise; for tools and tests that run it in a thread."""
    deadline = time.monotonic() + timeout
    while not show.ready.wait(0.05):
        if show.stop.is_set() or time.monotonic() > deadline:
            raise RuntimeError("the show did not start")

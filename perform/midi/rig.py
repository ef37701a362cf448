"""Everything MIDI in a running show: ports, mapping files, learn, LED feedback, the clock.

Threads: the ports' reader thread feeds clock messages straight to the clock follower (their
timing must not wait on the event loop) and hands every other playable message to the loop
in batches; the mapping, learn and feedback run on the loop; MIDI clock out has a thread of
its own. Opening, rescanning and closing ports can block, so they run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import watchfiles

from perform.core.aio import cancel
from perform.core.params import ParamError, ParamStore
from perform.midi.clock_out import ClockSender
from perform.midi.learn import LearnError, add_binding, learnable, moved, table_for
from perform.midi.mapper import PLAYABLE, MidiMapper
from perform.midi.mapping import Mapping, MappingError
from perform.midi.ports import MidiInputs, MidiOutputs
from perform.tempo import TempoReading
from perform.tempo.midi_clock import ClockFollower

log = logging.getLogger("perform")

SHIPPED = Path(__file__).resolve().parents[2] / "mappings" / "midi"
LEARNED = "midi.toml"  # in the patch folder: where MIDI learn writes without --midi-map
RESCAN_EVERY = 1.0  # seconds between looks for controllers plugged in or pulled out
LEARN_TIMEOUT = 30.0  # seconds a learn waits for a control to move
LIVE_AFTER = 0.25  # seconds from opening an output to trusting that messages get through
STAMP_SLACK = 0.02  # seconds rtmidi's chained timestamps may trail the clock before a reset


@dataclass(frozen=True)
class MidiConfig:
    inputs: tuple[str, ...] = ()  # --midi-in: parts of port names, or "all"
    outputs: tuple[str, ...] = ()  # --midi-out
    maps: tuple[Path, ...] = ()  # --midi-map; none: the patch folder's midi.toml + shipped files
    clock_in: bool = False  # follow a MIDI clock from the inputs
    clock_out: bool = False  # send MIDI clock to the outputs
    virtual: bool = True  # open our own "perform" ports for a DAW
    api: str | None = None  # "alsa" or "jack"; None: what the machine runs


@dataclass(frozen=True)
class Learned:
    """What a MIDI learn bound, for the performer's confirmation."""

    param: str
    control: str  # "cc 21 on channel 1"
    port: str
    file: str
    replaced: list[str]  # params the control drove in that file before


@dataclass
class _Route:
    """One mapping file, played on the ports it is written for."""

    path: Path
    mapping: Mapping
    mapper: MidiMapper
    error: MappingError | None = None  # the file's last refused version, if newer
    unbound: list[str] = field(default_factory=list)

    def hears(self, port: str) -> bool:
        wanted = self.mapping.port
        return wanted is None or wanted.lower() in port.lower()

    def play(self, mapping: Mapping) -> None:
        self.mapping, self.error = mapping, None
        self.mapper.reload(mapping)


@dataclass
class _Learning:
    param: str
    result: asyncio.Future[Learned]
    timer: asyncio.TimerHandle


class MidiRig:
    """MIDI for one show; `start` opens it, `each_frame` runs once per rendered frame."""

    def __init__(self, store: ParamStore, config: MidiConfig, folder: Path,
                 show_time: Callable[[], float], bpm: float = 120.0,
                 on_error: Callable[[MappingError], None] = lambda error: None) -> None:
        self.store, self.config = store, config
        self._show_time, self._on_error = show_time, on_error
        self.follower = ClockFollower(bpm) if config.clock_in else None
        self.learn_file = (config.maps[0] if config.maps else folder / LEARNED).resolve()
        self.routes: list[_Route] = []
        self.inputs: MidiInputs | None = None
        self.outputs: MidiOutputs | None = None
        self.clock: ClockSender | None = None
        self._inbox: deque[tuple[str, mido.Message]] = deque()
        self._woken = False  # a drain of the inbox is scheduled on the loop
        self._stamps: dict[str, float] = {}  # per port: show time of its last message
        self._learning: _Learning | None = None
        self._version = 0  # of the store, as far as the controllers have been shown
        self._generation = -1  # of the store's declarations, as far as unbound is reported
        self._last_t: float | None = None
        self.refused = 0  # updates the store refused (a param gone since the message)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, stack: contextlib.AsyncExitStack,
                    reading: Callable[[], TempoReading]) -> None:
        """Open ports and mappings; everything is closed by `stack`. `reading()` is the tempo
        now, for MIDI clock out."""
        self._loop = asyncio.get_running_loop()
        self.routes = await asyncio.to_thread(self._load_routes)
        config = self.config
        self.inputs = await asyncio.to_thread(MidiInputs, config.inputs, self._heard,
                                              api=config.api, virtual=config.virtual)
        stack.push_async_callback(asyncio.to_thread, self.inputs.close)
        self.outputs = await asyncio.to_thread(MidiOutputs, config.outputs, api=config.api,
                                               virtual=config.virtual)
        stack.push_async_callback(asyncio.to_thread, self.outputs.close)
        if self.inputs.error and not (config.inputs or config.outputs):  # nothing was asked
            log.info("MIDI off: %s", self.inputs.error)
        await self._rescan()
        if config.clock_out:
            self.clock = ClockSender(reading, self.outputs.send)
            self.clock.start()
            stack.callback(self.clock.close)  # before the outputs close: Stop gets out
        stack.callback(self.cancel_learn, "the show stopped")
        for job in (self._rescan_often(), self._watch()):
            task = asyncio.create_task(job)
            stack.push_async_callback(cancel, task)

    # -- mappings -------------------------------------------------------------------------

    def _load_routes(self) -> list[_Route]:
        """--midi-map files; without any, the learn file and the shipped files for controllers
        named in them (a plugged-in nanoKONTROL2 plays as shipped)."""
        if self.config.maps:
            paths = [path.resolve() for path in self.config.maps]
        else:
            shipped = sorted(SHIPPED.glob("*.toml")) if SHIPPED.is_dir() else []
            paths = [self.learn_file, *shipped]
        routes = []
        for path in paths:
            route = _Route(path, _empty(path), MidiMapper(_empty(path), self.store.spec))
            if path.exists():
                self._read(route)
            elif path == self.learn_file:
                log.info("MIDI: no %s yet; MIDI learn will write it", path)
            else:
                log.warning("MIDI: no mapping file %s", path)
            if self.config.maps or path == self.learn_file or route.mapping.port is not None:
                routes.append(route)  # a shipped file for no port in particular stays out
        log.info("MIDI mappings: %s", ", ".join(
            f"{r.path.name} ({len(r.mapping.bindings)} bindings"
            + (f" for ports named {r.mapping.port!r})" if r.mapping.port else ")")
            for r in routes))
        return routes

    def _read(self, route: _Route) -> bool:
        """Play the file's new version; a broken one is reported and the last good plays on."""
        try:
            route.play(Mapping.load(route.path))
        except MappingError as error:
            route.error = error
            log.error("MIDI mapping: %s (the last good version plays on)", error)
            self._on_error(error)
            return False
        return True

    async def _watch(self) -> None:
        """Reload mapping files when saved, like patches."""
        folders = sorted({str(route.path.parent) for route in self.routes
                          if route.path.parent.is_dir()})
        if not folders:
            return
        async for changes in watchfiles.awatch(*folders, step=10, debounce=300,
                                               recursive=False):
            touched = {Path(path) for _, path in changes}
            for route in self.routes:
                if route.path in touched and route.path.exists():
                    if await asyncio.to_thread(self._read, route):
                        log.info("MIDI mapping %s reloaded: %d bindings", route.path.name,
                                 len(route.mapping.bindings))
                        self._show_all([route])
                    self._generation = -1  # report unbound params again

    # -- messages in ------------------------------------------------------------------------

    def _heard(self, port: str, message: mido.Message) -> None:
        """On the ports' reader thread: clock to the follower, the rest to the event loop."""
        now = self._show_time()
        last = self._stamps.get(port)
        stamp = now if last is None else min(now, last + message.time)
        if now - stamp > STAMP_SLACK:
            stamp = now
        self._stamps[port] = stamp
        kind = message.type
        if kind not in PLAYABLE:
            if self.follower is not None:
                self._follow(kind, message, stamp)
            return  # sysex, active sensing and the like mean nothing to a mapping
        self._inbox.append((port, message))
        if not self._woken and self._loop is not None:
            self._woken = True
            self._loop.call_soon_threadsafe(self._drain)

    def _follow(self, kind: str, message: mido.Message, stamp: float) -> None:
        follower = self.follower
        assert follower is not None
        if kind == "clock":
            follower.tick(stamp)
        elif kind == "start":
            follower.start(stamp)
        elif kind == "continue":
            follower.resume(stamp)
        elif kind == "stop":
            follower.stop(stamp)
        elif kind == "songpos":
            follower.song_position(message.pos)

    def _drain(self) -> None:
        self._woken = False
        while self._inbox:
            port, message = self._inbox.popleft()
            if self._learning is not None and moved(message):
                self._learn_from(port, message)
                continue
            for route in self.routes:
                if route.hears(port):
                    for name, value in route.mapper.handle(message, self.store.target):
                        self._set(name, value)

    def _set(self, name: str, value: object) -> None:
        try:
            self.store.set(name, value)
        except ParamError:  # the patch dropped it between the message and now
            self.refused += 1

    # -- once a frame -----------------------------------------------------------------------

    def each_frame(self, t: float) -> None:
        """Glide smoothed bindings, show changed params on the controllers, report unbound."""
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
        self._last_t = t
        for route in self.routes:
            for name, value in route.mapper.advance(dt):
                self._set(name, value)
        changed, self._version = self.store.changes_since(self._version)
        for name, value in changed.items():
            self._show(name, value)
        if self.store.generation != self._generation:
            self._generation = self.store.generation
            self._report_unbound()

    def _show(self, name: str, value: object, routes: list[_Route] | None = None,
              port: str | None = None) -> None:
        """Send a param's value to the controllers bound to it (on `port` only, if given)."""
        if self.outputs is None:
            return
        for route in self.routes if routes is None else routes:
            if port is not None and not route.hears(port):
                continue
            for message in route.mapper.feedback(name, value):
                self.outputs.send(message, only=port or route.mapping.port)

    def _show_all(self, routes: list[_Route], port: str | None = None) -> None:
        """Every value these mappings are bound to: after a reload, a learn, a plug-in."""
        targets = self.store.targets()
        for route in routes:
            for name in dict.fromkeys(b.param for b in route.mapping.bindings):
                if name in targets:
                    self._show(name, targets[name], [route], port)

    def _report_unbound(self) -> None:
        declared = self.store.names()
        connected = self._connected()
        for route in self.routes:
            playing = route.mapping.port is None or any(route.hears(p) for p in connected)
            unbound = route.mapper.unbound(declared) if playing else []
            if unbound and unbound != route.unbound:
                log.info("MIDI mapping %s drives params this patch lacks (kept; they play once "
                         "it declares them): %s", route.path.name, ", ".join(unbound))
            route.unbound = unbound

    def _connected(self) -> list[str]:
        if self.inputs is None:
            return []
        return [name for name, port in self.inputs.stats()["ports"].items()
                if port["connected"]]

    # -- ports come and go -------------------------------------------------------------------

    async def _rescan(self) -> None:
        assert self.inputs is not None and self.outputs is not None
        heard = await asyncio.to_thread(self.inputs.rescan)
        opened = await asyncio.to_thread(self.outputs.rescan)
        assert self._loop is not None
        for port in opened:  # a controller plugged in shows every value it is bound to, once
            # its connection is live: JACK makes it so at one of its next cycles
            self._loop.call_later(LIVE_AFTER, self._show_all, self.routes, port)
        if heard or opened:
            self._generation = -1

    async def _rescan_often(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_EVERY)
            await self._rescan()

    # -- MIDI learn ----------------------------------------------------------------------------

    def learn(self, param: str, timeout: float = LEARN_TIMEOUT) -> asyncio.Future[Learned]:
        """Bind the next control moved on any input to `param`, written to `learn_file`.

        Raises LearnError at once when it cannot be done; the future fails with LearnError
        on timeout, when another learn replaces this one, or when the file cannot be written.
        """
        learnable(self.store.spec(param), param)
        if self.inputs is None or self.inputs.error is not None:
            reason = self.inputs.error if self.inputs is not None else "MIDI is off"
            raise LearnError(f"no MIDI input to learn from: {reason}")
        assert self._loop is not None
        self.cancel_learn(f"replaced by a learn for {param!r}")
        result: asyncio.Future[Learned] = self._loop.create_future()
        timer = self._loop.call_later(timeout, self.cancel_learn,
                                      f"no control moved within {timeout:g} s")
        self._learning = _Learning(param, result, timer)
        log.info("MIDI learn: move a control for %s", param)
        return result

    def cancel_learn(self, why: str = "cancelled") -> None:
        learning, self._learning = self._learning, None
        if learning is not None:
            learning.timer.cancel()
            if not learning.result.done():
                learning.result.set_exception(LearnError(why))

    def _learn_from(self, port: str, message: mido.Message) -> None:
        learning, self._learning = self._learning, None
        assert learning is not None
        learning.timer.cancel()
        task = asyncio.create_task(self._write_learned(learning, port, message))
        task.add_done_callback(_quiet)

    async def _write_learned(self, learning: _Learning, port: str,
                             message: mido.Message) -> None:
        route = next(r for r in self.routes if r.path == self.learn_file)
        try:
            spec = learnable(self.store.spec(learning.param), learning.param)
            mapping, replaced = await asyncio.to_thread(add_binding, route.path,
                                                        table_for(message, spec), port)
        except LearnError as exc:
            if not learning.result.done():
                learning.result.set_exception(exc)
            return
        route.play(mapping)
        self._show_all([route])
        learned = Learned(learning.param, mapping.bindings[-1].label, port, str(route.path),
                          replaced)
        log.info("MIDI learn: %s on %s plays %s (written to %s)", learned.control, port,
                 learned.param, route.path)
        if not learning.result.done():
            learning.result.set_result(learned)

    # -- for /api/state ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        def error(route: _Route) -> dict[str, Any] | None:
            e = route.error
            return None if e is None else {"file": e.file, "line": e.line, "message": e.message}

        return {
            "in": self.inputs.stats() if self.inputs else None,
            "out": self.outputs.stats() if self.outputs else None,
            "mappings": [{"file": str(r.path), "name": r.mapping.name, "port": r.mapping.port,
                          "bindings": len(r.mapping.bindings), "unbound": r.unbound,
                          "error": error(r)} for r in self.routes],
            "learn_file": str(self.learn_file),
            "learning": self._learning.param if self._learning else None,
            "clock_in": self.follower is not None,
            "clock_out_ticks": self.clock.ticks if self.clock else None,
            "refused": self.refused,
        }


def _empty(path: Path) -> Mapping:
    return Mapping(path.stem, (), path)


def _quiet(task: asyncio.Task[Any]) -> None:
    """Log a failed learn write instead of Python's 'exception never retrieved'."""
    if not task.cancelled() and task.exception() is not None:
        log.error("MIDI learn failed", exc_info=task.exception())

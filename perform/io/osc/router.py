"""One router for every OSC transport: params by address pattern, server commands, timetags.

UDP, TCP and OSCQuery's WebSocket all hand raw packets to `OscRouter.receive` on the event
loop. Bundles timetagged in the future are held in one heap and applied by a single
`loop.call_at` timer, in timetag order (arrival order for equal tags); the loop never
sleeps. Nothing a client sends can raise out of here: each kind of trouble is counted in
`OscStats` and logged at most once per kind per `LOG_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from perform.core.params import RESERVED, ParamError, ParamStore
from perform.io.osc.patterns import WILDCARDS, compile_pattern
from perform.io.osc.wire import Message, OscError, build, parse

log = logging.getLogger("perform.osc")

LOG_EVERY = 1.0  # seconds between warnings of one kind
MAX_HELD = 65536  # bundle messages waiting for their timetag; beyond, applied at once
SERVER = "/" + RESERVED  # "/perform/"


@dataclass(frozen=True)
class Peer:
    """Who sent a packet, and how to answer on the same transport."""

    host: str
    port: int
    transport: str  # "udp", "tcp" or "ws"
    send: Callable[[bytes], None]

    def reply(self, address: str, *args: Any) -> None:
        self.send(build(address, args))


class CommandError(Exception):
    """A server command that cannot be done; the text goes back as /perform/refused."""


# A server command gets the message's args and the sender; it returns the reply to send
# (address, args) or None for "/perform/ok <address>".
Command = Callable[[tuple[Any, ...], Peer], tuple[str, tuple[Any, ...]] | None]


@dataclass
class OscStats:
    """Counters for /api/state: a performer reads them to see why a fader does nothing."""

    received: int = 0  # messages, including each one inside a bundle
    applied: int = 0  # param sets (a wildcard message can apply several)
    commands: int = 0  # /perform/... messages done
    unknown_address: int = 0
    bad_args: int = 0  # wrong type, count, NaN, too long...
    malformed: int = 0  # packets that do not parse
    scheduled: int = 0  # messages held for a future timetag
    beyond_cap: int = 0  # timetagged further ahead than max_delay: applied at once
    queue_full: int = 0  # more than MAX_HELD waiting: applied at once
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OscRouter:
    """Applies OSC packets to the param store and runs /perform/ commands; never raises.

    "/walk/speed 0.5" sets param "walk/speed"; "/pad 0.2 0.7" (or one OSC array) sets a
    2-vector; a pattern such as "/layer/*/opacity" sets every param it matches.
    """

    def __init__(self, store: ParamStore, *, commands: Mapping[str, Command] | None = None,
                 max_delay: float = 10.0, stats: OscStats | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.max_delay, self.clock = store, max_delay, clock
        self.commands = dict(commands or {})
        self.stats = stats or OscStats()
        self._generation = -1
        self._routes: dict[str, str] = {}  # OSC address -> param name
        self._held: list[tuple[float, int, Message, Peer]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def receive(self, data: bytes, peer: Peer) -> None:
        """Apply one packet now, or hold its messages until their timetags; call on the loop."""
        try:
            messages = parse(data)
        except OscError as exc:
            return self.problem("malformed", f"malformed OSC from {peer.host}: {exc}")
        now = self.clock()
        for message in messages:
            self.stats.received += 1
            ahead = message.timetag - now if message.timetag else 0.0
            if ahead <= 0.0005:
                self._apply(message, peer)
            elif ahead > self.max_delay:
                self.problem("beyond_cap", f"{message.address}: timetag {ahead:.1f} s ahead is "
                             f"past the {self.max_delay:g} s cap; applied now (clocks in sync?)")
                self._apply(message, peer)
            elif len(self._held) >= MAX_HELD:
                self.problem("queue_full", f"{MAX_HELD} bundle messages wait; applied now")
                self._apply(message, peer)
            else:
                self.stats.scheduled += 1
                heapq.heappush(self._held, (message.timetag, next(self._order), message, peer))
                self._arm()

    @property
    def held(self) -> int:
        return len(self._held)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._held.clear()

    # -- timetags -------------------------------------------------------------------------

    def _arm(self) -> None:
        """Point the one timer at the earliest held message."""
        due = self._held[0][0]
        if self._timer is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = due
        self._timer = loop.call_at(loop.time() + max(due - self.clock(), 0.0), self._release)

    def _release(self) -> None:
        self._timer = None
        now = self.clock()
        while self._held and self._held[0][0] <= now + 0.0005:
            _, _, message, peer = heapq.heappop(self._held)
            self._apply(message, peer)
        if self._held:
            self._arm()

    # -- applying ---------------------------------------------------------------------------

    def _apply(self, message: Message, peer: Peer) -> None:
        address = message.address
        try:
            if address.startswith(SERVER):
                return self._command(message, peer)
            names = self._targets(address)
            if not names:
                why = "bad address pattern" if names is None else "no param at"
                return self.problem("unknown_address", f"{why} {address}")
            args = message.args  # none: a trigger fires; any other param refuses it
            value = None if not args else args[0] if len(args) == 1 else args
            for name in names:
                try:
                    self.store.set(name, value)
                except ParamError as exc:
                    self.problem("bad_args", str(exc))
                else:
                    self.stats.applied += 1
        except Exception as exc:  # a bug here must not take OSC down
            self.problem("bad_args", f"{address} failed: {exc!r}")

    def _targets(self, address: str) -> list[str] | None:
        if self.store.generation != self._generation:
            self._generation = self.store.generation
            self._routes = {"/" + name: name for name in self.store.names()}
        if WILDCARDS.isdisjoint(address):
            name = self._routes.get(address)
            return [name] if name else []
        regex = compile_pattern(address)
        if regex is None:
            return None
        return [name for path, name in self._routes.items() if regex.fullmatch(path)]

    def _command(self, message: Message, peer: Peer) -> None:
        address = message.address
        command = self.commands.get(address)
        if command is None:
            self.problem("unknown_address", f"no server command {address}")
            return peer.reply(SERVER + "refused", address, "no such server command")
        try:
            answer = command(message.args, peer)
        except CommandError as exc:
            self.problem("bad_args", f"{address}: {exc}")
            return peer.reply(SERVER + "refused", address, str(exc))
        self.stats.commands += 1
        reply_address, args = answer or (SERVER + "ok", (address,))
        peer.reply(reply_address, *args)

    def problem(self, kind: str, text: str) -> None:
        """Count one problem; log it unless this kind was logged less than LOG_EVERY ago."""
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.stats.last_error = text
        now = time.monotonic()
        if now - self._last_log.get(kind, -LOG_EVERY) < LOG_EVERY:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        if hidden := self._suppressed.pop(kind, 0):
            text += f" (+{hidden} like it since the last report)"
        self._last_log[kind] = now
        log.warning("%s", text)

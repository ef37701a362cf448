"""OSC in and out: UDP messages set params; errors go back to TouchDesigner/Max.

We parse with python-osc's packet classes but never use its Dispatcher or servers: the
Dispatcher `time.sleep`s for bundles timetagged in the future, which would freeze the event
loop. Future bundle messages are scheduled with `loop.call_later` instead. Packets are
sanity-checked before python-osc sees them, because its bundle parser loops forever on a
negative element size and logs to the root logger for every unknown type tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Protocol

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from perform.core.params import ParamError

log = logging.getLogger("perform.osc")

MAX_DELAY = 10.0  # seconds; bundles timetagged further ahead are refused (see OscReceiver)
LOG_EVERY = 5.0  # seconds between repeated warnings of one kind
_WILDCARDS = frozenset("*?[]{}")
# Type tags python-osc parses without a root-logger warning; "r" (RGBA) is left out because
# python-osc decodes it to a plain int that would pass for a number.
_TYPE_TAGS = frozenset(b"ihfdsbmtTFN[]")
_MAX_NESTING = 8


class Store(Protocol):
    def set(self, name: str, value: object) -> object: ...
    def names(self) -> list[str]: ...


@dataclass
class OscStats:
    """Counters for the status page; a performer reads them to see why a fader does nothing."""

    received: int = 0  # messages, including those inside bundles
    applied: int = 0  # param sets (a wildcard message can apply several)
    unknown_address: int = 0
    bad_args: int = 0
    malformed: int = 0  # datagrams that do not parse
    scheduled: int = 0  # bundle messages held for a future timetag
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_message(data: bytes, start: int, end: int) -> str | None:
    if data[start:start + 1] != b"/":
        return "element is neither a message nor a bundle"
    nul = data.find(b"\0", start, end)
    if nul < 0:
        return "address is not terminated"
    tags = (nul - start) // 4 * 4 + 4 + start
    if tags >= end:
        return None
    tag_end = data.find(b"\0", tags, end)
    if data[tags:tags + 1] != b"," or tag_end < 0:
        return "bad type tag string"
    if not _TYPE_TAGS.issuperset(data[tags + 1:tag_end]):
        return f"unsupported type tag in {data[tags:tag_end].decode('ascii', 'replace')!r}"
    return None


def _precheck(data: bytes) -> str | None:
    """Why `data` is not a sane OSC packet, or None; iterative so nesting cannot recurse."""
    stack = [(0, len(data), 0)]
    while stack:
        start, end, depth = stack.pop()
        if not data.startswith(b"#bundle\0", start, end):
            problem = _check_message(data, start, end)
            if problem:
                return problem
            continue
        if end - start < 16:
            return "bundle is too short"
        if depth >= _MAX_NESTING:
            return "bundles nested too deep"
        index = start + 16
        while index < end:
            if end - index < 4:
                return "truncated bundle element"
            (size,) = struct.unpack_from(">i", data, index)
            if size <= 0 or size % 4 or index + 4 + size > end:
                return f"bad bundle element size {size}"
            stack.append((index + 4, index + 4 + size, depth + 1))
            index += 4 + size
    return None


@lru_cache(maxsize=128)
def _pattern(address: str) -> re.Pattern[str] | None:
    """Translate an OSC address pattern to a regex; None when the pattern is invalid."""
    out, i = [], 0
    while i < len(address):
        c, i = address[i], i + 1
        if c in "[{":
            j = address.find("]" if c == "[" else "}", i)
            if j < 0:
                return None
            body, i = address[i:j], j + 1
            if c == "{":
                out.append("(?:" + "|".join(map(re.escape, body.split(","))) + ")")
                continue
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                return None
            inner = "".join("-" if ch == "-" and 0 < k < len(body) - 1 else re.escape(ch)
                            for k, ch in enumerate(body))
            out.append("[" + ("^/" if negate else "") + inner + "]")
        elif c in "]}":
            return None
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(c) or re.escape(c))
    try:
        return re.compile("".join(out))
    except re.error:  # a reversed range such as [z-a]
        return None


class OscReceiver(asyncio.DatagramProtocol):
    """Applies OSC messages to the param store; never raises, never blocks the loop.

    "/walk/speed 0.5" sets param "walk/speed"; wildcards (* ? [a-z] [!x] {a,b}) set every
    matching param, with * and ? not crossing "/". Each message needs exactly one argument.
    Bundles timetagged in the future are applied by `loop.call_later`; more than MAX_DELAY
    ahead they are refused as bad_args (usually a clock skew, which a silent late jump would
    hide). Warnings are logged once per (kind, address), then at most every LOG_EVERY s per kind.
    """

    def __init__(self, store: Store, stats: OscStats,
                 on_applied: Callable[[str, object], None] | None = None) -> None:
        self.store, self.stats, self.on_applied = store, stats, on_applied
        self._names: tuple[str, ...] | None = None
        self._routes: dict[str, str] = {}
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._ids = itertools.count()
        self._seen: set[tuple[str, str]] = set()
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            problem = _precheck(data)
            if problem:
                return self._fail("malformed", str(addr), f"malformed OSC packet: {problem}")
            try:
                timed = OscPacket(data).messages
            except Exception as exc:
                return self._fail("malformed", str(addr), f"malformed OSC packet: {exc}")
            now = time.time()
            for item in timed:
                self.stats.received += 1
                delay = item.time - now
                if delay <= 0.001:
                    self._apply(item.message)
                elif delay > MAX_DELAY:
                    self._fail("bad_args", item.message.address,
                               f"{item.message.address}: bundle timetag {delay:.1f} s ahead "
                               f"(limit {MAX_DELAY:g} s); are the clocks in sync?")
                else:
                    self.stats.scheduled += 1
                    key = next(self._ids)
                    self._pending[key] = asyncio.get_running_loop().call_later(
                        delay, self._fire, key, item.message)
        except Exception as exc:  # a bug here must not take OSC down
            self._fail("malformed", str(addr), f"OSC packet failed: {exc!r}")

    def _fire(self, key: int, message: OscMessage) -> None:
        self._pending.pop(key, None)
        try:
            self._apply(message)
        except Exception as exc:
            self._fail("bad_args", message.address, f"{message.address}: {exc!r}")

    def _targets(self, address: str) -> list[str] | None:
        names = tuple(self.store.names())
        if names != self._names:
            self._names, self._routes = names, {"/" + name: name for name in names}
        if _WILDCARDS.isdisjoint(address):
            name = self._routes.get(address)
            return [name] if name else []
        regex = _pattern(address)
        if regex is None:
            return None
        return [name for path, name in self._routes.items() if regex.fullmatch(path)]

    def _apply(self, message: OscMessage) -> None:
        address = message.address
        targets = self._targets(address)
        if not targets:
            why = "bad address pattern" if targets is None else "no param at"
            return self._fail("unknown_address", address, f"{why} {address}")
        args = message.params
        if len(args) != 1:
            return self._fail("bad_args", address,
                              f"{address} expects exactly one value, got {len(args)}")
        value = args[0]
        if not isinstance(value, int | float | str):
            return self._fail("bad_args", address,
                              f"{address} cannot take an OSC {type(value).__name__}")
        for name in targets:
            try:
                coerced = self.store.set(name, value)
            except ParamError as exc:
                self._fail("bad_args", address, str(exc))
                continue
            self.stats.applied += 1
            if self.on_applied is not None:
                try:
                    self.on_applied(name, coerced)
                except Exception as exc:
                    self._fail("callback", name, f"on_applied failed for {name}: {exc!r}")

    def _fail(self, kind: str, address: str, text: str) -> None:
        if hasattr(self.stats, kind):
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.stats.last_error = text
        now, key = time.monotonic(), (kind, address)
        if key not in self._seen and len(self._seen) < 256:  # capped: random addresses flood
            self._seen.add(key)
        elif now - self._last_log.get(kind, -LOG_EVERY) < LOG_EVERY:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        elif hidden := self._suppressed.pop(kind, 0):
            text += f" (+{hidden} similar since last report)"
        self._last_log[kind] = now
        log.warning("%s", text)


async def serve_osc(store: Store, host: str, port: int, stats: OscStats,
                    on_applied: Callable[[str, object], None] | None = None,
                    ) -> asyncio.DatagramTransport:
    """Listen for OSC on UDP host:port (0 picks a free port; read it from "sockname")."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: OscReceiver(store, stats, on_applied), local_addr=(host, port))
    with contextlib.suppress(OSError, AttributeError):  # absorbs bursts while a frame runs
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return transport


class OscFeedback:
    """Sends OSC to feedback targets (e.g. /perform/error to TouchDesigner); never raises on send.

    Hosts are resolved once in `add_target`, so `send` never waits on DNS.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._targets: list[tuple[str, int]] = []
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def targets(self) -> list[tuple[str, int]]:
        return list(self._targets)

    def add_target(self, host: str, port: int) -> None:
        """Add host:port; raises ValueError when the host cannot be resolved."""
        try:
            target = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
        except (OSError, UnicodeError, OverflowError) as exc:
            raise ValueError(f"cannot resolve OSC feedback target {host}:{port}: {exc}") from None
        if target not in self._targets:
            self._targets.append(target)

    def send(self, address: str, *args: object) -> int:
        """Send one message to every target; returns how many sends succeeded."""
        try:
            builder = OscMessageBuilder(address)
            for arg in args:
                builder.add_arg(arg)
            data = builder.build().dgram
        except Exception as exc:
            self._error(f"cannot build OSC {address}: {exc!r}")
            return 0
        done = 0
        for target in self._targets:
            try:
                self._sock.sendto(data, target)
                done += 1
            except OSError as exc:  # unreachable, buffer full, message too long...
                self._error(f"OSC send to {target[0]}:{target[1]} failed: {exc}")
        self.sent += done
        return done

    def send_error(self, file: str, line: int, message: str) -> int:
        """Report a broken patch: /perform/error file line message."""
        return self.send("/perform/error", str(file), line, str(message)[:1000])

    def _error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text

    def close(self) -> None:
        self._sock.close()

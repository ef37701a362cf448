"""OSCQuery: the params as a browsable, live address space for OSCQuery controllers.

Follows the Vidvox OSCQuery proposal: a GET on an OSC address returns its JSON node (with
its whole subtree), `?ATTRIBUTE` returns one attribute and `?HOST_INFO` describes the
server. A WebSocket on the same port streams the values of LISTENed addresses as binary OSC,
announces PATH_ADDED / PATH_REMOVED when a patch reload changes the params, and accepts
binary OSC packets, which go to the same handler as the UDP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from perform.core.params import ParamStore
from perform.io.osc.wire import value_message

log = logging.getLogger("perform.oscquery")

ATTRIBUTES = frozenset({"FULL_PATH", "CONTENTS", "TYPE", "VALUE", "RANGE", "ACCESS",
                        "DESCRIPTION"})
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True,
              "LISTEN": True, "PATH_ADDED": True, "PATH_REMOVED": True}
READ, WRITE = 1, 2  # ACCESS bits
TAGS = {"float": "f", "int": "i", "bool": "T", "str": "s"}
OUTBOX = 1024  # frames queued for one client before it is disconnected
HEARTBEAT = 20.0  # seconds between pings, so a vanished client is noticed
CLOSE_TIMEOUT = 2.0  # seconds close() waits for clients to acknowledge
_NO_COMMANDS: Mapping[str, tuple[str, str]] = MappingProxyType({})


def _param_node(address: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """A param's node; VALUE is its target, what a controller last set, not the glide. A
    trigger is an impulse ("I"): written to fire it, with no value to read."""
    if info["control"] == "trigger":
        return _command_node(address, "I", info["doc"])
    length = info["length"]
    tags = "f" * length if length else TAGS[info["type"]]
    target = info["target"]
    bounds = {} if info["type"] in ("bool", "str") else {
        key: info[key.lower()] for key in ("MIN", "MAX") if info[key.lower()] is not None}
    return {"FULL_PATH": address, "DESCRIPTION": info["doc"], "ACCESS": READ | WRITE,
            "TYPE": tags, "VALUE": list(target) if length else [target],
            "RANGE": [bounds] * len(tags)}


def _command_node(address: str, tags: str, description: str) -> dict[str, Any]:
    """A server method: write-only, so it has no VALUE; TYPE is omitted when it takes none."""
    node = {"FULL_PATH": address, "DESCRIPTION": description, "ACCESS": WRITE}
    return {**node, "TYPE": tags} if tags else node


def same_machine_or_host(request: web.Request) -> bool:
    """Browsers send an Origin: a web page from elsewhere must not play the show.

    Native clients (TouchDesigner, ossia, python) send none and are let in.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = {"localhost", "127.0.0.1", "::1", urlsplit("//" + request.host).hostname}
    return urlsplit(origin).hostname in allowed


class _Peer:
    """One WebSocket client: the addresses it LISTENs to, and an outbox drained by its own
    task, so that publish() never awaits and a slow or dead client delays only itself."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.listening: set[str] = set()
        self._outbox: asyncio.Queue[str | bytes] = asyncio.Queue(OUTBOX)
        self._task = asyncio.create_task(self._drain())
        self._closing: asyncio.Task[bool] | None = None

    def send(self, data: str | bytes) -> None:
        """Queue a text (JSON) or binary (OSC) frame.

        A client OUTBOX frames behind is closed rather than left showing stale values: the
        proposal makes reconnecting and LISTENing again the client's job.
        """
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            if self._closing is None:
                log.warning("OSCQuery client %s fell %d messages behind; disconnecting it",
                            self.ws.get_extra_info("peername"), OUTBOX)
                self._task.cancel()
                self._closing = asyncio.create_task(self.ws.close(  # no drain: it is stuck
                    code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow", drain=False))

    async def _drain(self) -> None:
        try:
            while True:
                data = await self._outbox.get()
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(data)
        except ConnectionError:
            pass  # the client went away; its handler removes it

    def stop(self) -> None:
        self._task.cancel()


class OscQuery:
    """Serves `store` (and the write-only `commands`) over HTTP and WebSocket.

    `host_info()` gives NAME, OSC_IP, OSC_PORT and OSC_TRANSPORT; `on_packet(data, reply)`
    handles an OSC packet from a WebSocket, `reply(bytes)` answering on that socket. Param
    "walk/speed" lives at "/walk/speed"; `commands` maps an address to (TYPE, DESCRIPTION).
    """

    def __init__(self, store: ParamStore, host_info: Callable[[], dict[str, Any]],
                 on_packet: Callable[[bytes, Callable[[bytes], None]], None],
                 commands: Mapping[str, tuple[str, str]] = _NO_COMMANDS) -> None:
        self.store, self.host_info, self.on_packet = store, host_info, on_packet
        self.commands = dict(commands)
        self._peers: set[_Peer] = set()
        self._version = store.version
        self._names = set(store.names())
        self._generation = store.generation

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{address:.*}", self._get)
        return app

    def _tree(self) -> dict[str, Any]:
        """The whole address space as one root node, built fresh from the store."""
        leaves = {"/" + name: _param_node("/" + name, info)
                  for name, info in self.store.describe().items()}
        leaves.update({address: _command_node(address, tags, description)
                       for address, (tags, description) in self.commands.items()})
        root: dict[str, Any] = {"FULL_PATH": "/", "ACCESS": 0}
        for address, leaf in leaves.items():
            parts = address.strip("/").split("/")
            node = root
            for depth, part in enumerate(parts):
                node = node.setdefault("CONTENTS", {}).setdefault(
                    part, {"FULL_PATH": "/" + "/".join(parts[:depth + 1]), "ACCESS": 0})
            node.update(leaf)  # a param "a" may also be the container of "a/b"
        return root

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not same_machine_or_host(request):
                return web.json_response({"error": "WebSocket from another site"}, status=403)
            return await self._serve_socket(request)
        attribute = request.query_string
        if attribute == "HOST_INFO":  # whatever the path, per the proposal
            return web.json_response({**self.host_info(), "EXTENSIONS": EXTENSIONS})
        node: dict[str, Any] | None = self._tree()
        for part in filter(None, request.path.split("/")):
            node = node.get("CONTENTS", {}).get(part) if node else None
        if node is None:
            return web.json_response({"error": f"no OSC node at {request.path}"}, status=404)
        if not attribute:
            return web.json_response(node)
        if attribute not in ATTRIBUTES:
            return web.json_response({"error": f"unknown attribute {attribute!r}"}, status=400)
        if attribute == "VALUE" and not node["ACCESS"] & READ:
            return web.Response(status=204)  # the proposal's answer to reading the unreadable
        # An attribute the node lacks (TYPE of a container) is an empty object, as in the proposal.
        return web.json_response({attribute: node[attribute]} if attribute in node else {})

    async def _serve_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
        await ws.prepare(request)
        peer = _Peer(ws)
        self._peers.add(peer)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._command(peer, message.data)
                elif message.type is WSMsgType.BINARY:
                    self._packet(peer, message.data)
        finally:
            self._peers.discard(peer)
            peer.stop()
        return ws

    def _command(self, peer: _Peer, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            message = {}
        command, address = message.get("COMMAND"), message.get("DATA")
        if command not in ("LISTEN", "IGNORE") or not isinstance(address, str):
            log.debug("ignored OSCQuery WebSocket text %.80r", text)
        elif command == "LISTEN":
            peer.listening.add(address)
        else:
            peer.listening.discard(address)

    def _packet(self, peer: _Peer, data: bytes) -> None:
        try:
            self.on_packet(data, peer.send)
        except Exception:
            log.exception("OSC packet from an OSCQuery WebSocket failed")

    def publish(self) -> None:
        """Stream this frame's value changes to their listeners and announce added or removed
        params. Called once per frame on the event loop: it never awaits and never raises."""
        try:
            changed, self._version = self.store.changes_since(self._version)
            self._announce_paths()
            for name, value in changed.items():
                address = "/" + name
                listeners = [peer for peer in self._peers if address in peer.listening]
                if listeners:
                    data = value_message(address, value)
                    for peer in listeners:
                        peer.send(data)
        except Exception:
            log.exception("OSCQuery publish failed")

    def _announce_paths(self) -> None:
        if self.store.generation == self._generation:  # no patch load since the last frame
            return
        self._generation = self.store.generation
        names = set(self.store.names())
        if names == self._names:
            return
        removed = ["/" + name for name in sorted(self._names - names)]
        added = ["/" + name for name in sorted(names - self._names)]
        self._names = names
        messages = ([json.dumps({"COMMAND": "PATH_REMOVED", "DATA": a}) for a in removed]
                    + [json.dumps({"COMMAND": "PATH_ADDED", "DATA": a}) for a in added])
        for peer in self._peers:
            peer.listening.difference_update(removed)  # the proposal ends a LISTEN there
            for message in messages:
                peer.send(message)

    async def close(self) -> None:
        """Close every WebSocket, so that the AppRunner's cleanup does not wait on clients."""
        closing = [peer.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                   for peer in self._peers]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True),
                                   CLOSE_TIMEOUT)

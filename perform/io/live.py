"""The control page's WebSocket, `GET /api/live`: params and status pushed, changes taken.

Once per rendered frame at most (`LiveHub.publish`, called from the show's per-frame loop)
each client gets one JSON message: the params whose targets changed since its last message
and a small status (patch file, version, status, error with its line, fps). The first
message, and the one after a reload that adds or removes params, carries every param with
its description (`"full": true`). A client sends `{"set": {"name": value}}`, coerced and
clamped as POST /api/params; what fails comes back as `{"errors": {name: why}}`.

A client's outbox holds one pending message into which newer changes are merged, drained by
its own task: a slow client gets fewer, fuller messages and never delays the render, the
loop or the other clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from perform.core.params import ParamError, ParamStore
from perform.io.oscquery import same_machine_or_host

log = logging.getLogger("perform.live")

HEARTBEAT = 20.0  # seconds between pings, so a vanished client is noticed
MAX_SET = 64 * 1024  # bytes of one incoming message


class _Client:
    """One page: the message waiting for it, and the task that sends it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.pending: dict[str, Any] = {}
        self.sent = 0
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._drain())

    def post(self, full: dict[str, Any] | None = None, changed: dict[str, Any] | None = None,
             status: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> None:
        """Merge into the pending message; whatever it held before is folded in, not lost."""
        pending = self.pending
        if full is not None:
            pending.pop("changed", None)
            pending["params"], pending["full"] = full, True
        if changed:
            if "params" in pending:  # a full list waiting: bring its targets up to date
                for name, value in changed.items():
                    if name in pending["params"]:
                        pending["params"][name]["target"] = value
            else:
                pending.setdefault("changed", {}).update(changed)
        if status is not None:
            pending["status"] = status
        if errors:
            pending.setdefault("errors", {}).update(errors)
        if pending:
            self._ready.set()

    async def _drain(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                message, self.pending = self.pending, {}
                await self.ws.send_str(json.dumps(message, separators=(",", ":")))
                self.sent += 1
        except (ConnectionError, RuntimeError):
            pass  # the page went away; its handler forgets it

    def stop(self) -> None:
        self._task.cancel()


class LiveHub:
    """Every open control page; `status()` gives the small status dict each message carries."""

    def __init__(self, store: ParamStore, status: Callable[[], dict[str, Any]],
                 unauthorised: Callable[[web.Request], web.Response | None]) -> None:
        self.store, self.status, self.unauthorised = store, status, unauthorised
        self.clients: set[_Client] = set()
        self._version = store.version
        self._names: list[str] = store.names()
        self._status: dict[str, Any] | None = None

    def publish(self) -> None:
        """Once per frame, on the event loop: what changed since the last call, to everyone."""
        if not self.clients:
            self._version, self._names = self.store.version, self.store.names()
            return
        changed, self._version = self.store.changes_since(self._version)
        names = self.store.names()
        full = None
        if names != self._names:  # a reload added or removed params: send the new list
            self._names, full, changed = names, self._full(), {}
        status = self.status()
        if full is None and not changed and status == self._status:
            return  # nothing new this frame
        self._status = status
        for client in self.clients:
            client.post(full=full, changed=changed, status=status)

    def _full(self) -> dict[str, Any]:
        return self.store.describe()

    def refused(self, request: web.Request) -> web.Response | None:
        if not same_machine_or_host(request):
            return web.json_response({"error": "pages from other sites may not play the show"},
                                     status=403)
        return self.unauthorised(request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if (refusal := self.refused(request)) is not None:
            return refusal
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_SET)
        await ws.prepare(request)
        client = _Client(ws)
        if not self.clients:  # publish() has not kept track while nobody listened
            self._version, self._names = self.store.version, self.store.names()
        client.post(full=self._full(), status=self.status())
        self.clients.add(client)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(client, message.data)
        finally:
            self.clients.discard(client)
            client.stop()
        return ws

    def _receive(self, client: _Client, data: str) -> None:
        try:
            body = json.loads(data)
        except json.JSONDecodeError:
            body = None
        values = body.get("set") if isinstance(body, dict) else None
        if not isinstance(values, dict):
            client.post(errors={"": 'send {"set": {"name": value, ...}}'})
            return
        errors: dict[str, str] = {}
        for name, value in values.items():
            try:
                self.store.set(name, value)
            except ParamError as exc:
                errors[name] = str(exc)
        client.post(errors=errors)

    async def close(self) -> None:
        """Close every page's socket without waiting on one that does not answer."""
        clients, self.clients = list(self.clients), set()
        for client in clients:
            client.stop()
        await asyncio.gather(*(asyncio.wait_for(c.ws.close(), 1.0) for c in clients),
                             return_exceptions=True)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/live", self.handle)]

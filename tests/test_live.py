"""The control page's WebSocket, /api/live, with aiohttp's client (no browser)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from conftest import LiveShow, wait_for

PATCH = """\
from perform import models, param, walks

speed = param("walk/speed", 0.25, 0.0, 1.0)
glow = param("glow", False)
pad = param("pad", (0.5, 0.5), 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    return model(walks.noise_loop(ctx.t * speed, dim=model.z_dim))
"""


def show_of(text: str, folder, live_show):
    """A live show playing `text` as its patch, and the patch's path."""
    patch = folder / "show.py"
    patch.write_text(text)
    return live_show(patch), patch


def socket_url(live) -> str:
    return live.url.replace("http", "ws") + "/api/live"


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(ws.receive_json(), timeout)


async def test_first_message_has_every_param_then_only_changes(tmp_path, live_show):
    live, patch = show_of(PATCH, tmp_path, live_show)
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(live)) as ws:
        first = await next_json(ws)
        assert first["full"] is True
        assert set(first["params"]) == {"walk/speed", "glow", "pad"}
        assert first["params"]["walk/speed"]["target"] == 0.25
        assert first["params"]["walk/speed"]["type"] == "float"
        assert first["params"]["pad"]["length"] == 2
        assert first["status"]["status"] == "ok" and first["status"]["version"] == 1
        assert first["status"]["file"] == str(patch.resolve())
        # a change from elsewhere (HTTP) comes as itself alone
        async with session.post(live.url + "/api/params", json={"glow": True}) as response:
            assert response.status == 200
        while "changed" not in (message := await next_json(ws)):
            pass
        assert message["changed"] == {"glow": True}
        assert "params" not in message
        # `set` plays params with the usual coercion; what fails is answered
        await ws.send_json({"set": {"walk/speed": 2, "pad": [0.1, 0.9]}})
        changed: dict = {}
        while changed.keys() != {"walk/speed", "pad"}:
            changed.update((await next_json(ws)).get("changed", {}))
        assert changed == {"walk/speed": 1.0, "pad": [0.1, 0.9]}
        assert live.state()["params"]["walk/speed"]["target"] == 1.0
        await ws.send_json({"set": {"nope": 1, "glow": "bright"}})
        while "errors" not in (message := await next_json(ws)):
            pass
        assert set(message["errors"]) == {"nope", "glow"}
        await ws.send_str("not json")
        while "errors" not in (message := await next_json(ws)):
            pass
        assert message["errors"] == {"": 'send {"set": {"name": value, ...}}'}


async def test_a_reload_that_adds_a_param_sends_the_whole_list_again(tmp_path, live_show):
    live, patch = show_of(PATCH, tmp_path, live_show)
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(live)) as ws:
        assert (await next_json(ws))["full"]
        patch.write_text(PATCH.replace('glow = param("glow", False)',
                                       'glow = param("glow", False)\nhue = param("hue", 0.5)'))
        while not (message := await next_json(ws)).get("full"):
            pass
        assert "hue" in message["params"]


async def test_the_token_is_needed_on_the_url(tmp_path, live_show):
    patch = tmp_path / "show.py"
    patch.write_text(PATCH)
    live = live_show(patch, token="s3cret")
    url = live.url.replace("http", "ws") + "/api/live"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "?token=wrong")
        assert refused.value.status == 401
        async with session.ws_connect(url + "?token=s3cret") as ws:
            assert (await next_json(ws))["full"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "?token=s3cret",
                                     headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_a_client_that_never_reads_does_not_slow_the_render(tmp_path, live_show):
    """A page that never reads its messages, while another plays a param 60 times a second,
    leaves the frame rate within 10 %."""
    patch = tmp_path / "show.py"
    patch.write_text(PATCH)
    live = live_show(patch)
    url = live.url.replace("http", "ws") + "/api/live"

    async def frame_rate(seconds: float) -> float:
        start = live.state()["frames"]["frames"]
        await asyncio.sleep(seconds)
        return (live.state()["frames"]["frames"] - start) / seconds

    async def sweep(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
        for i in range(int(seconds * 60)):
            await ws.send_json({"set": {"walk/speed": (i % 100) / 100}})
            await asyncio.sleep(1 / 60)

    await asyncio.to_thread(wait_for, lambda: live.state()["frames"]["fps"])
    alone = await frame_rate(1.5)
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(url) as stuck, session.ws_connect(url) as player:
        _, crowded = await asyncio.gather(sweep(player, 1.5), frame_rate(1.5))
        assert not stuck.closed
    assert crowded >= 0.9 * alone, (alone, crowded)


BANK = 200  # params in the heavy patch
GROUP = 40  # params one `set` changes: 40 x 1 KB stays under the 64 KB a message may carry
FILLER = "~" * 1000  # each value is about 1 KB, so every frame's message is large


def heavy_patch() -> str:
    """A patch with BANK text params of long names: its messages fill a socket quickly."""
    lines = ["import numpy as np", "", "from perform import param", ""]
    lines += [f'param("{bank_name(i)}", "")' for i in range(BANK)]
    lines += ["", "", "def frame(ctx):  # cheap: its frame rate shows the server's load alone",
              "    return np.full((ctx.height, ctx.width, 3), ctx.t % 1.0, np.float32)", ""]
    return "\n".join(lines)


def bank_name(i: int) -> str:
    return f"bank/{i:03d}/a_rather_long_descriptive_name"


class RawSocket:
    """A WebSocket client by hand on a socket with a tiny receive buffer: it reads only
    when told to, so the server's sends really back up."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock, self.buffer = sock, bytearray(buffered)

    @classmethod
    async def connect(cls, live: LiveShow) -> RawSocket:
        assert live.show.http_address is not None
        host, port = live.show.http_address
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET /api/live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:  # the response headers, a few bytes at a time
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 64), 5.0)
            assert chunk, "the server closed the upgrade"
            head += chunk
        head, _, rest = bytes(head).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert f"\r\nSec-WebSocket-Accept: {accept}\r\n".encode() in head + b"\r\n"
        return cls(sock, rest)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    async def _take(self, n: int) -> bytes:
        loop = asyncio.get_running_loop()
        while len(self.buffer) < n:
            chunk = await loop.sock_recv(self.sock, 65536)
            assert chunk, "the server closed the socket"
            self.buffer += chunk
        taken = bytes(self.buffer[:n])
        del self.buffer[:n]
        return taken

    async def receive_json(self) -> dict:
        """The next text message; server frames are unmasked; pings are skipped."""
        payload = b""
        while True:
            first, second = await self._take(2)
            assert not second & 0x80, "a server must not mask its frames"
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self._take(2), "big")
            elif length == 127:
                length = int.from_bytes(await self._take(8), "big")
            data = await self._take(length)
            opcode = first & 0x0F
            assert opcode != 0x8, f"the server closed the page: {data!r}"
            if opcode in (0x0, 0x1):
                payload += data
                if first & 0x80:  # FIN
                    return json.loads(payload)

    def close(self) -> None:
        self.sock.close()


def send_queue(local_port: int, remote_port: int) -> int | None:
    """Bytes the kernel holds unsent (or unacknowledged) on one loopback TCP connection."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[0], 16)
    return None


async def test_a_stuck_page_with_full_buffers_delays_nothing_and_catches_up(tmp_path, live_show):
    """A page whose socket stops reading while another plays 200 params of a kilobyte: its
    sends really block, yet the frame rate stays within 10 %, the other page keeps getting
    the changes, the stuck page's outbox stays one message, and when it reads again it gets
    the latest targets, not a backlog."""
    live, _ = show_of(heavy_patch(), tmp_path, live_show)
    hub, server_loop = live.show.live, live.show._loop
    assert server_loop is not None and live.show.http_address is not None
    server_port = live.show.http_address[1]
    latest: dict[str, str] = {}  # what the player set last, param by param
    seen: dict[str, str] = {}  # the targets the player's messages told it
    received, ticks = [0], [0]

    async def on_server(read: Callable[[], Any]) -> Any:
        """`read()` on the show's event loop, where the hub lives: a consistent look."""
        async def call() -> Any:
            return read()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), server_loop))

    async def sweep(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
        """60 sets a second, each giving GROUP params a new 1 KB value."""
        for _ in range(int(seconds * 60)):
            group, ticks[0] = ticks[0] % (BANK // GROUP), ticks[0] + 1
            values = {bank_name(i): f"{ticks[0]:06d}{FILLER}"  # never a value set before
                      for i in range(group * GROUP, (group + 1) * GROUP)}
            await ws.send_json({"set": values})
            latest.update(values)
            await asyncio.sleep(1 / 60)

    def frames_since(then: float) -> int:
        return sum(frame.rendered_at > then for frame in list(live.recorder.frames))

    async def play(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> tuple[float, float]:
        """Sweep for `seconds`: the frames rendered a second, and the player's messages."""
        then, heard = time.monotonic(), received[0]
        await sweep(ws, seconds)
        elapsed = time.monotonic() - then
        return frames_since(then) / elapsed, (received[0] - heard) / elapsed

    async def read_player(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            body = json.loads(message.data)
            received[0] += 1
            if "params" in body:
                seen.update({n: p["target"] for n, p in body["params"].items()})
            seen.update(body.get("changed", {}))

    await asyncio.to_thread(wait_for, lambda: live.state()["frames"]["fps"])
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(live)) as player:
        reader = asyncio.create_task(read_player(player))
        await sweep(player, 0.5)  # every param has a value of its own
        alone, heard_alone = await play(player, 2.0)

        stuck = await RawSocket.connect(live)
        try:
            def stuck_client() -> Any:
                clients = [c for c in hub.clients
                           if c.ws.get_extra_info("peername", (None, None))[1] == stuck.port]
                assert clients, "the server let the stuck page go"
                return clients[0]

            # play until its sends block: both kernels' buffers full, then the server's own,
            # and nothing more goes out however much changes
            for _ in range(10):
                sent = await on_server(lambda: stuck_client().sent)
                await sweep(player, 0.5)
                if await on_server(lambda: stuck_client().sent) == sent:
                    break
            else:
                raise AssertionError("the stuck page's sends never blocked")
            queued = send_queue(server_port, stuck.port)
            assert queued, "the kernel should hold what the stuck page has not read"

            outbox: list[tuple[set[str], int, int]] = []  # its keys, params, characters

            def look() -> tuple[set[str], int, int]:
                pending = stuck_client().pending
                changed = pending.get("changed", {})
                return set(pending), len(changed), sum(len(n) + len(v) for n, v in changed.items())

            async def watch_outbox() -> None:
                while True:
                    outbox.append(await on_server(look))
                    await asyncio.sleep(0.1)

            watcher, ticks_before = asyncio.create_task(watch_outbox()), ticks[0]
            crowded, heard_crowded = await play(player, 2.0)
            watcher.cancel()
            changes = (ticks[0] - ticks_before) * GROUP
            largest = max((size for _, _, size in outbox), default=0)
            numbers = (f"frames/s {alone:.1f} alone, {crowded:.1f} with a stuck page; player "
                       f"messages/s {heard_alone:.1f} then {heard_crowded:.1f}; {queued} bytes "
                       f"in the kernel; outbox at most {largest} characters after {changes} "
                       f"changes, {len(outbox)} looks")
            # its sends stayed blocked all along
            assert await on_server(lambda: stuck_client().sent) == sent, numbers
            assert send_queue(server_port, stuck.port), numbers
            # (1) the render does not notice
            assert crowded >= 0.9 * alone, numbers
            # (2) the other page still hears of nearly every frame, and ends with what it set last
            assert heard_alone >= 0.8 * alone and heard_crowded >= 0.8 * crowded, numbers
            await asyncio.to_thread(wait_for, lambda: seen == latest, 5.0, "the last values")
            # (3) one merged message waits: an entry a param, however many changes came
            assert changes >= 10 * BANK and len(outbox) >= 10, numbers
            assert all(keys <= {"changed", "status"} and params <= BANK
                       for keys, params, _ in outbox), numbers
            assert largest < BANK * (len(FILLER) + 100), numbers
            assert await on_server(lambda: stuck_client().pending["changed"]) == latest

            # (4) reading again, it catches up in a few messages, the last with every latest target
            got: list[dict] = []
            targets: dict[str, str] = {}
            while targets != latest:
                got.append(body := await asyncio.wait_for(stuck.receive_json(), 5.0))
                if "params" in body:
                    targets.update({n: p["target"] for n, p in body["params"].items()})
                targets.update(body.get("changed", {}))
            assert got[-1]["changed"] == latest
            assert len(got) <= sent + 2, (len(got), sent)  # what it had queued, then one more
        finally:
            stuck.close()
        reader.cancel()

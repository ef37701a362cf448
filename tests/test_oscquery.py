"""OSCQuery over real HTTP and WebSocket connections on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from conftest import msg
from pythonosc.osc_message import OscMessage
from pythonoscquery.osc_query_client import OSCQueryClient
from zeroconf import ServiceInfo

from perform.core.params import ParamSpec, ParamStore
from perform.io.oscquery import EXTENSIONS, OscQuery

SPECS = [
    ParamSpec("walk/speed", 0.05, 0.0, 1.0, doc="loops a second"),
    ParamSpec("pad", (0.5, 0.5), 0.0, 1.0),
    ParamSpec("on", False),
    ParamSpec("label", "x"),
    ParamSpec("count", 3, 0, 10),
    ParamSpec("fx/flash", 0, doc="a flash", control="trigger"),
]
COMMANDS = {"/perform/reload": ("", "reload the patch file"),
            "/perform/fps": ("f", "target frames per second")}
HOST = {"NAME": "perform test", "OSC_IP": "127.0.0.1", "OSC_PORT": 9000, "OSC_TRANSPORT": "UDP"}


@pytest.fixture
async def server():
    store = ParamStore()
    store.declare(SPECS)
    packets: list[bytes] = []

    def on_packet(data: bytes, reply) -> None:
        packets.append(data)
        if data == b"boom":
            raise ValueError("a broken handler")
        reply(msg("/ack", OscMessage(data).address))

    query = OscQuery(store, lambda: dict(HOST), on_packet, COMMANDS)
    runner = web.AppRunner(query.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession(f"http://127.0.0.1:{port}")
    yield SimpleNamespace(store=store, query=query, port=port, session=session, packets=packets)
    await session.close()
    await query.close()
    await runner.cleanup()


async def get(server, url: str) -> tuple[int, object]:
    async with server.session.get(url) as response:
        body = await response.json() if response.status != 204 else None
        return response.status, body


async def sync(ws) -> None:
    """Round-trip an OSC packet: frames are handled in order, so earlier ones are done."""
    await ws.send_bytes(msg("/sync"))
    frame = await ws.receive(timeout=5)
    assert frame.type is WSMsgType.BINARY, frame
    assert OscMessage(frame.data).params == ["/sync"], "a frame came before the sync reply"


async def listen(ws, *addresses: str, command: str = "LISTEN") -> None:
    for address in addresses:
        await ws.send_json({"COMMAND": command, "DATA": address})
    await sync(ws)


async def next_osc(ws) -> OscMessage:
    frame = await ws.receive(timeout=5)
    assert frame.type is WSMsgType.BINARY, frame
    return OscMessage(frame.data)


async def test_root_is_the_whole_tree(server):
    status, root = await get(server, "/")
    assert status == 200
    assert root["FULL_PATH"] == "/" and root["ACCESS"] == 0 and "TYPE" not in root
    assert set(root["CONTENTS"]) == {"walk", "pad", "on", "label", "count", "fx", "perform"}
    walk = root["CONTENTS"]["walk"]
    assert walk["FULL_PATH"] == "/walk" and walk["ACCESS"] == 0
    assert walk["CONTENTS"]["speed"]["VALUE"] == [0.05]
    assert set(root["CONTENTS"]["perform"]["CONTENTS"]) == {"reload", "fps"}
    assert (await get(server, "/walk"))[1] == walk
    assert (await get(server, "/walk/"))[1] == walk


@pytest.mark.parametrize(("address", "node"), [
    ("/walk/speed", {"TYPE": "f", "VALUE": [0.05], "RANGE": [{"MIN": 0.0, "MAX": 1.0}],
                     "DESCRIPTION": "loops a second"}),
    ("/pad", {"TYPE": "ff", "VALUE": [0.5, 0.5],
              "RANGE": [{"MIN": 0.0, "MAX": 1.0}, {"MIN": 0.0, "MAX": 1.0}]}),
    ("/on", {"TYPE": "T", "VALUE": [False], "RANGE": [{}]}),
    ("/label", {"TYPE": "s", "VALUE": ["x"], "RANGE": [{}]}),
    ("/count", {"TYPE": "i", "VALUE": [3], "RANGE": [{"MIN": 0, "MAX": 10}]}),
])
async def test_param_nodes(server, address, node):
    status, body = await get(server, address)
    assert status == 200
    assert body == {"FULL_PATH": address, "ACCESS": 3, "DESCRIPTION": "", **node}


async def test_a_trigger_is_a_write_only_impulse(server):
    status, body = await get(server, "/fx/flash")
    assert status == 200
    assert body == {"FULL_PATH": "/fx/flash", "ACCESS": 2, "DESCRIPTION": "a flash", "TYPE": "I"}


async def test_commands_are_write_only_nodes(server):
    assert (await get(server, "/perform/reload"))[1] == {
        "FULL_PATH": "/perform/reload", "ACCESS": 2, "DESCRIPTION": "reload the patch file"}
    assert (await get(server, "/perform/fps"))[1] == {
        "FULL_PATH": "/perform/fps", "ACCESS": 2, "TYPE": "f",
        "DESCRIPTION": "target frames per second"}


@pytest.mark.parametrize(("attribute", "value"), [
    ("VALUE", [0.05]), ("TYPE", "f"), ("RANGE", [{"MIN": 0.0, "MAX": 1.0}]), ("ACCESS", 3),
    ("DESCRIPTION", "loops a second"), ("FULL_PATH", "/walk/speed"),
])
async def test_one_attribute(server, attribute, value):
    assert await get(server, f"/walk/speed?{attribute}") == (200, {attribute: value})


async def test_contents_attribute_and_attributes_a_node_lacks(server):
    status, body = await get(server, "/walk?CONTENTS")
    assert status == 200 and list(body["CONTENTS"]) == ["speed"]
    assert await get(server, "/walk?TYPE") == (200, {})  # as the proposal's example
    assert await get(server, "/walk/speed?CONTENTS") == (200, {})


async def test_value_of_what_cannot_be_read_is_no_content(server):
    assert await get(server, "/perform/reload?VALUE") == (204, None)
    assert await get(server, "/walk?VALUE") == (204, None)


async def test_errors(server):
    for url in ("/nope", "/walk/nope", "/walk/speed/deeper", "/nope?VALUE"):
        assert (await get(server, url))[0] == 404, url
    for url in ("/walk/speed?BOGUS", "/walk/speed?value", "/walk/speed?VALUE&RANGE"):
        assert (await get(server, url))[0] == 400, url


async def test_value_is_the_target_not_the_smoothed_value(server):
    server.store.declare([*SPECS[1:], ParamSpec("walk/speed", 0.05, 0.0, 1.0, smooth=5.0)])
    server.store.set("walk/speed", 0.9)
    smoothed = server.store.snapshot(0.01)[0]["walk/speed"]
    assert smoothed < 0.1
    assert await get(server, "/walk/speed?VALUE") == (200, {"VALUE": [0.9]})


async def test_host_info(server):
    expected = {**HOST, "EXTENSIONS": EXTENSIONS}
    assert await get(server, "/?HOST_INFO") == (200, expected)
    assert await get(server, "/nope/at/all?HOST_INFO") == (200, expected)  # path is irrelevant
    assert all(EXTENSIONS[key] for key in ("VALUE", "LISTEN", "PATH_ADDED", "PATH_REMOVED"))


async def test_listen_streams_values_as_osc(server):
    ws = await server.session.ws_connect("/")
    await listen(ws, "/walk/speed")
    server.store.set("walk/speed", 0.75)
    server.query.publish()
    message = await next_osc(ws)
    assert (message.address, message.params) == ("/walk/speed", [0.75])
    await listen(ws, "/walk/speed", command="IGNORE")
    server.store.set("walk/speed", 0.25)
    server.query.publish()
    await sync(ws)  # nothing came before the sync reply


async def test_a_thousand_sets_between_frames_send_one_message(server):
    ws = await server.session.ws_connect("/")
    await listen(ws, "/walk/speed")
    for i in range(1000):
        server.store.set("walk/speed", i / 1000)
    server.query.publish()
    assert (await next_osc(ws)).params == pytest.approx([0.999])  # OSC floats are 32-bit
    server.query.publish()
    await sync(ws)


async def test_each_type_streams_as_its_osc_type(server):
    ws = await server.session.ws_connect("/")
    await listen(ws, "/pad", "/on", "/label", "/count")
    for name, value in (("pad", (0.25, 0.75)), ("on", True), ("label", "hi"), ("count", 7)):
        server.store.set(name, value)
    server.query.publish()
    received = {}
    for _ in range(4):
        message = await next_osc(ws)
        received[message.address] = (message.params, message.dgram.split(b",")[1][:2])
    assert received == {"/pad": ([0.25, 0.75], b"ff"), "/on": ([True], b"T\0"),
                        "/label": (["hi"], b"s\0"), "/count": ([7], b"i\0")}


async def test_path_added_and_removed(server):
    ws = await server.session.ws_connect("/")
    await listen(ws, "/walk/speed")
    server.store.declare([*SPECS, ParamSpec("fx/glow", 0.0, 0.0, 1.0)])
    server.query.publish()
    assert await ws.receive_json(timeout=5) == {"COMMAND": "PATH_ADDED", "DATA": "/fx/glow"}
    assert (await get(server, "/fx/glow?VALUE")) == (200, {"VALUE": [0.0]})
    server.store.declare(SPECS[1:])
    server.query.publish()
    assert await ws.receive_json(timeout=5) == {"COMMAND": "PATH_REMOVED", "DATA": "/fx/glow"}
    assert await ws.receive_json(timeout=5) == {"COMMAND": "PATH_REMOVED",
                                                "DATA": "/walk/speed"}
    server.store.declare(SPECS)  # back again: the LISTEN ended with the removal
    server.query.publish()
    assert await ws.receive_json(timeout=5) == {"COMMAND": "PATH_ADDED", "DATA": "/walk/speed"}
    await sync(ws)


async def test_binary_frames_reach_on_packet_and_replies_come_back(server):
    ws = await server.session.ws_connect("/")
    packet = msg("/walk/speed", 0.5)
    await ws.send_bytes(packet)
    reply = await next_osc(ws)
    assert (reply.address, reply.params) == ("/ack", ["/walk/speed"])
    assert server.packets == [packet]


async def test_garbage_leaves_the_socket_usable(server, caplog):
    ws = await server.session.ws_connect("/")
    for text in ("not json", "[1, 2]", '{"COMMAND": "LISTEN"}', '{"COMMAND": "FLY", "DATA": "/x"}',
                 '{"COMMAND": "LISTEN", "DATA": 5}', "null", ""):
        await ws.send_str(text)
    with caplog.at_level(logging.ERROR, logger="perform.oscquery"):
        await ws.send_bytes(b"boom")  # on_packet raises: logged, the socket lives on
        await listen(ws, "/count")
    assert "OSC packet from an OSCQuery WebSocket failed" in caplog.text
    server.store.set("count", 5)
    server.query.publish()
    assert (await next_osc(ws)).params == [5]


async def test_a_client_that_falls_behind_is_disconnected(server, caplog):
    ws = await server.session.ws_connect("/")
    await listen(ws, "/walk/speed")
    with caplog.at_level(logging.WARNING, logger="perform.oscquery"):
        for i in range(2000):  # no await: the outbox is never drained meanwhile
            server.store.set("walk/speed", i / 2000)
            server.query.publish()
    assert caplog.text.count("messages behind; disconnecting it") == 1
    frames = 0
    while (frame := await ws.receive(timeout=5)).type is WSMsgType.BINARY:
        frames += 1
    assert frame.type is WSMsgType.CLOSE and ws.close_code == 1013
    assert frames <= 1024
    again = await server.session.ws_connect("/")
    await listen(again, "/walk/speed")


async def test_a_vanished_client_does_not_disturb_publish(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    listen_frame = b'{"COMMAND": "LISTEN", "DATA": "/count"}'
    writer.write(bytes([0x81, 0x80 | len(listen_frame)]) + b"\0\0\0\0" + listen_frame)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()  # gone without a close handshake
    for i in range(50):
        server.store.set("count", i % 10)
        server.query.publish()
        await asyncio.sleep(0.005)
    ws = await server.session.ws_connect("/")
    await listen(ws, "/count")
    server.store.set("count", 1)
    server.query.publish()
    assert (await next_osc(ws)).params == [1]


async def test_close_ends_open_sockets_at_once(server):
    sockets = [await server.session.ws_connect("/") for _ in range(3)]
    for ws in sockets:
        await listen(ws, "/count")
    start = time.monotonic()
    closing = asyncio.create_task(server.query.close())
    await asyncio.sleep(0)
    server.store.set("count", 4)
    server.query.publish()  # into sockets already closing: their sends fail quietly
    for ws in sockets:
        assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE
        assert ws.close_code == 1001
    await closing
    assert time.monotonic() - start < 1.0


async def test_python_oscquery_client_reads_the_server(server):
    info = ServiceInfo("_oscjson._tcp.local.", "perform test._oscjson._tcp.local.",
                       port=server.port, parsed_addresses=["127.0.0.1"])
    client = OSCQueryClient(info)
    host = await asyncio.to_thread(client.get_host_info)
    assert (host.name, host.osc_ip, host.osc_port, host.osc_transport) == (
        "perform test", "127.0.0.1", 9000, "UDP")
    assert host.extensions["LISTEN"] is True
    node = await asyncio.to_thread(client.query_node, "/walk/speed")
    assert (node.full_path, node.value, node.description) == (
        "/walk/speed", [0.05], "loops a second")
    assert node.access.value == 3
    pad = await asyncio.to_thread(client.query_node, "/pad")
    assert pad.value == [0.5, 0.5]
    assert await asyncio.to_thread(client.query_node, "/nope") is None

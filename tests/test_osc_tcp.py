"""OSC over real TCP on 127.0.0.1: OSC 1.0 length prefixes and OSC 1.1 SLIP on one port."""

from __future__ import annotations

import asyncio
import struct

import pytest
from conftest import msg
from pythonosc.osc_message import OscMessage

from perform.core.params import ParamSpec, ParamStore
from perform.io.osc import OscRouter, OscServer
from perform.io.osc import transport as transport_module

END, ESC = b"\xc0", b"\xdb"


def sized(packet: bytes) -> bytes:
    return struct.pack(">i", len(packet)) + packet


def slip(packet: bytes) -> bytes:  # written here from RFC 1055, independent of the server's
    body = bytearray()
    for byte in packet:
        body += {0xC0: b"\xdb\xdc", 0xDB: b"\xdb\xdd"}.get(byte, bytes([byte]))
    return END + bytes(body) + END


def unslip(frame: bytes) -> bytes:
    out, escaped = bytearray(), False
    for byte in frame.strip(END):
        if escaped:
            out.append({0xDC: 0xC0, 0xDD: 0xDB}[byte])
            escaped = False
        elif byte == 0xDB:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)


@pytest.fixture
async def server():
    store = ParamStore()
    store.declare([ParamSpec("walk/speed", 0.125, 0.0, 1.0), ParamSpec("label", "hi"),
                   ParamSpec("pad", (0.5, 0.5), 0.0, 1.0)])
    router = OscRouter(store, commands={"/perform/ping": lambda args, peer: ("/perform/pong",
                                                                              args)})
    server = OscServer(router)
    await server.start("127.0.0.1", 0)
    server.store = store
    yield server
    server.close()


async def until(check, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def targets(store: ParamStore) -> dict[str, object]:
    return store.targets()


async def test_length_prefixed_packets_whole_and_split(server):
    reader, writer = await asyncio.open_connection(*server.address)
    data = sized(msg("/walk/speed", 0.5)) + sized(msg("/label", "one"))
    writer.write(data + sized(msg("/pad", 0.25, 0.75))[:7])  # the third arrives in two parts
    await writer.drain()
    await until(lambda: targets(server.store)["label"] == "one")
    writer.write(sized(msg("/pad", 0.25, 0.75))[7:] + sized(msg("/perform/ping", 7)))
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    pong = OscMessage(await reader.readexactly(size))
    assert (pong.address, pong.params) == ("/perform/pong", [7])
    assert targets(server.store) == {"walk/speed": 0.5, "label": "one", "pad": (0.25, 0.75)}
    assert server.router.stats.malformed == 0
    writer.close()


async def test_slip_frames_with_escaped_bytes_and_replies_in_slip(server):
    reader, writer = await asyncio.open_connection(*server.address)
    raw = msg("/label", "x").replace(b"x", b"\xc0\xdb")  # a string with raw END and ESC bytes
    # the second frame only ends with END, as some clients send it
    writer.write(slip(msg("/walk/speed", 0.5)) + slip(raw)[1:])
    await writer.drain()
    await until(lambda: server.router.stats.applied == 2)
    assert targets(server.store)["label"] == "\ufffd\ufffd"  # invalid UTF-8, but delivered whole
    writer.write(slip(msg("/perform/ping", "\u00c0")))
    frame = await reader.readuntil(END)
    frame += await reader.readuntil(END) if frame == END else b""
    pong = OscMessage(unslip(frame))
    assert (pong.address, pong.params) == ("/perform/pong", ["\u00c0"])
    writer.close()


async def test_broken_slip_frames_are_counted_and_the_next_one_applies(server):
    _, writer = await asyncio.open_connection(*server.address)
    writer.write(END + msg("/walk/speed", 0.5)[:9] + END  # truncated
                 + END + b"/walk\xdbX" + END  # an escape byte with nothing valid after it
                 + slip(msg("/walk/speed", 0.75)))
    await writer.drain()
    await until(lambda: targets(server.store)["walk/speed"] == 0.75)
    assert server.router.stats.malformed == 2
    writer.close()


async def test_an_impossible_length_closes_that_client_only(server):
    reader, writer = await asyncio.open_connection(*server.address)
    _, other = await asyncio.open_connection(*server.address)
    writer.write(struct.pack(">i", 1 << 20))  # under 16 MiB: read as OSC 1.0
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed by the server
    other.write(sized(msg("/walk/speed", 1.0)))
    await until(lambda: targets(server.store)["walk/speed"] == 1.0)
    assert server.router.stats.malformed == 1
    other.close()


async def test_silent_clients_block_no_one_and_too_many_are_refused(server, monkeypatch):
    monkeypatch.setattr(transport_module, "MAX_CLIENTS", 3)
    silent = [await asyncio.open_connection(*server.address) for _ in range(3)]
    await until(lambda: len(server.clients) == 3)
    reader, _extra = await asyncio.open_connection(*server.address)
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # refused: the limit is reached
    await until(lambda: server.refused == 1)
    _, writer = silent[0]
    writer.write(sized(msg("/walk/speed", 0.25)))  # a once-silent client can still talk
    await until(lambda: targets(server.store)["walk/speed"] == 0.25)
    for _, writer in silent:
        writer.close()
    await until(lambda: not server.clients)


async def test_udp_and_tcp_share_the_port_number_and_the_router(server):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       remote_addr=server.address)
    transport.sendto(msg("/walk/speed", 0.875))
    _, writer = await asyncio.open_connection(*server.address)
    writer.write(slip(msg("/label", "tcp")))
    await until(lambda: targets(server.store)["label"] == "tcp"
                and targets(server.store)["walk/speed"] == 0.875)
    assert server.router.stats.received == 2
    transport.close()
    writer.close()

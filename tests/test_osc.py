"""OSC over real UDP sockets on 127.0.0.1: routing, types, vectors, bundles, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import struct
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from conftest import msg
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

from perform.core.params import ParamSpec, ParamStore
from perform.io.osc import OscRouter, OscServer, Peer
from perform.io.osc import router as router_module
from perform.io.osc.wire import OscError, Timetag, parse

SPECS = [
    ParamSpec("walk/speed", 0.125, 0.0, 1.0),
    ParamSpec("layer/1/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/2/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/10/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/1/fx/opacity", 1.0, 0.0, 1.0),
    ParamSpec("count", 3, 0, 10),
    ParamSpec("flag", False),
    ParamSpec("label", "hi"),
    ParamSpec("pad", (0.5, 0.5), 0.0, 1.0),
]


class RecordingStore(ParamStore):
    """A real store that also notes when each value arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[str, object, float]] = []

    def set(self, name: str, value: object) -> object:
        coerced = super().set(name, value)
        self.applied.append((name, coerced, time.monotonic()))
        return coerced


def make_store() -> RecordingStore:
    store = RecordingStore()
    store.declare(SPECS)
    return store


def quiet_peer(replies: list[bytes] | None = None) -> Peer:
    return Peer("test", 1, "udp", (replies if replies is not None else []).append)


def bundle(timestamp: float, *messages: bytes) -> bytes:
    builder = OscBundleBuilder(timestamp)
    for data in messages:
        builder.add_content(OscBundle(data) if data.startswith(b"#bundle") else OscMessage(data))
    return builder.build().dgram


def value(store: ParamStore, name: str) -> object:
    return store.snapshot(0.0)[0][name]


async def until(predicate, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for OSC effect"
        await asyncio.sleep(0.002)


@pytest.fixture
async def osc():
    store = make_store()
    router = OscRouter(store, commands={"/perform/ping": lambda args, peer: ("/perform/pong",
                                                                              args)})
    server = OscServer(router)
    await server.start("127.0.0.1", 0)
    port = server.address[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(*datagrams: bytes) -> None:
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))

    yield SimpleNamespace(store=store, stats=router.stats, applied=store.applied, port=port,
                          send=send, sock=sock, router=router, server=server)
    sock.close()
    server.close()


async def test_values_are_coerced_and_clamped(osc):
    osc.send(msg("/walk/speed", 5.0), msg("/count", 3.6), msg("/flag", True),
             msg("/label", "hello"), msg("/layer/1/opacity", -2))
    await until(lambda: osc.stats.applied == 5)
    assert value(osc.store, "walk/speed") == 1.0
    assert value(osc.store, "count") == 4
    assert value(osc.store, "flag") is True
    assert value(osc.store, "label") == "hello"
    assert value(osc.store, "layer/1/opacity") == 0.0
    osc.send(msg("/count", 99), msg("/walk/speed", 0), msg("/flag", False), msg("/label", 7))
    await until(lambda: osc.stats.applied == 9)
    assert value(osc.store, "count") == 10
    assert value(osc.store, "walk/speed") == 0.0
    assert isinstance(value(osc.store, "walk/speed"), float)
    assert value(osc.store, "flag") is False
    assert value(osc.store, "label") == "7"
    assert [(n, v) for n, v, _ in osc.applied][:2] == [("walk/speed", 1.0), ("count", 4)]
    assert osc.stats.received == 9 and osc.stats.bad_args == 0
    json.dumps(osc.stats.as_dict())


async def test_messages_from_another_process(osc):
    code = (
        "import sys\n"
        "from pythonosc.udp_client import SimpleUDPClient\n"
        "c = SimpleUDPClient('127.0.0.1', int(sys.argv[1]))\n"
        "c.send_message('/walk/speed', 0.5)\n"
        "c.send_message('/count', 8)\n"
        "c.send_message('/label', 'from afar')\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, str(osc.port))
    assert await asyncio.wait_for(proc.wait(), 4.0) == 0
    await until(lambda: osc.stats.applied == 3)
    assert value(osc.store, "walk/speed") == 0.5
    assert value(osc.store, "count") == 8
    assert value(osc.store, "label") == "from afar"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("/layer/*/opacity", {"layer/1/opacity", "layer/2/opacity", "layer/10/opacity"}),
    ("/layer/{1,2}/opacity", {"layer/1/opacity", "layer/2/opacity"}),
    ("/layer/?/opacity", {"layer/1/opacity", "layer/2/opacity"}),
    ("/layer/[1-2]/opacity", {"layer/1/opacity", "layer/2/opacity"}),
    ("/layer/[!1]/opacity", {"layer/2/opacity"}),
    ("/layer/1*", set()),  # * stops at "/"
    ("/*/*/fx/opacity", {"layer/1/fx/opacity"}),
])
async def test_wildcards(osc, pattern, expected):
    osc.send(msg(pattern, 0.25))
    await until(lambda: osc.stats.received == 1)
    changed = {name for name in osc.store.names() if value(osc.store, name) == 0.25}
    assert changed == expected
    assert osc.stats.applied == len(expected)
    assert osc.stats.unknown_address == (0 if expected else 1)


async def test_unknown_and_bad_patterns_are_counted(osc):
    bad = ["/nope", "/walk", "/layer/[1/opacity", "/layer/[z-a]/opacity", "/layer/[!]/opacity",
           "/layer/}/opacity"]
    osc.send(*(msg(address, 1.0) for address in bad))
    await until(lambda: osc.stats.unknown_address == len(bad))
    assert "/layer/}/opacity" in osc.stats.last_error
    assert osc.stats.applied == 0


async def test_routes_follow_redeclared_params(osc):
    osc.store.declare([*SPECS, ParamSpec("fresh/one", 0.0, 0.0, 1.0)])
    osc.send(msg("/fresh/one", 0.5))
    await until(lambda: osc.stats.applied == 1)
    assert value(osc.store, "fresh/one") == 0.5


@pytest.mark.parametrize("data", [
    b"/walk/speed\0",  # no type tags at all
    msg("/walk/speed"),
    msg("/walk/speed", 0.5, 0.75),
    msg("/walk/speed", "fast"),
    msg("/walk/speed", b"\x01\x02\x03"),
    msg("/walk/speed", float("nan")),
    msg("/walk/speed", float("inf")),
    msg("/walk/speed", "nan"),
    msg("/walk/speed", None),
    b"/walk/speed\0,t\0\0" + struct.pack(">II", 3_900_000_000, 0),  # a date is not a speed
    msg("/count", [1, 2]),
    msg("/label", "x" * 60000),  # a 64 KB-ish string is refused, not stored
    msg("/pad", 0.5),
    msg("/pad", 0.1, 0.2, 0.3),
    msg("/pad", [0.1, float("nan")]),
])
async def test_bad_args_leave_value_unchanged(osc, data):
    osc.send(data)
    await until(lambda: osc.stats.bad_args == 1)
    assert value(osc.store, "walk/speed") == 0.125
    assert value(osc.store, "count") == 3
    assert value(osc.store, "label") == "hi" and value(osc.store, "pad") == (0.5, 0.5)
    assert osc.stats.last_error
    assert osc.stats.applied == 0


async def test_every_type_tag_reaches_the_params(osc):
    osc.send(msg("/walk/speed", 0.25),  # f
             b"/count\0\0,d\0\0" + struct.pack(">d", 6.0),  # d
             b"/count\0\0,h\0\0" + struct.pack(">q", 7),  # h
             msg("/flag", True), msg("/flag", False), msg("/flag", True),  # T F
             msg("/label", "text"),  # s
             msg("/pad", 0.25, 0.75),  # a vector as two floats (TouchOSC's XY pad)
             msg("/pad", [0.125, 0.5]),  # ... or as one OSC array
             msg("/count", 9))  # i
    await until(lambda: osc.stats.applied == 10)
    assert [(n, v) for n, v, _ in osc.applied] == [
        ("walk/speed", 0.25), ("count", 6), ("count", 7), ("flag", True), ("flag", False),
        ("flag", True), ("label", "text"), ("pad", (0.25, 0.75)), ("pad", (0.125, 0.5)),
        ("count", 9)]
    assert osc.stats.bad_args == 0


def test_the_decoder_reads_every_type_tag_and_nested_bundles():
    data = (b"/all\0\0\0\0,ifdsbTFNhtc[ff]\0\0\0\0"
            + struct.pack(">ifd", 1, 0.5, 0.25) + b"hi\0\0" + struct.pack(">i", 3) + b"abc\0"
            + struct.pack(">qII", -2, 0, 1) + b"\0\0\0x" + struct.pack(">ff", 1.0, 2.0))
    (message,) = parse(data)
    assert message.address == "/all"
    assert message.args == (1, 0.5, 0.25, "hi", b"abc", True, False, None, -2, Timetag(0.0),
                            "x", [1.0, 2.0])
    inner = bundle(time.time() + 2, msg("/b", 2))
    outer = bundle(time.time() + 1, msg("/a", 1), inner, msg("/c", 3))
    assert [(m.address, m.args) for m in parse(outer)] == [("/a", (1,)), ("/b", (2,)),
                                                           ("/c", (3,))]
    times = [m.timetag for m in parse(outer)]
    assert times[0] == times[2] and times[1] - times[0] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("data", [
    b"", b"/x", b"/x\0\0\0,i\0\0", b"/x\0\0\0,f\0\0\0\0", b"/x\0\0\0,[f\0\0\0\0\0\0",
    b"/x\0\0\0,]\0\0", b"/x\0\0\0,s\0\0abcd", b"/x\0\0\0,b\0\0\x7f\0\0\0",
    b"/x\0\0\0,Z\0\0", b"#bundle\0" + struct.pack(">Qi", 1, -4), b"#bundle\0\0\0",
    b"#bundle\0" * 40, b"nope\0\0\0\0",
])
def test_the_decoder_refuses_broken_packets_with_a_reason(data):
    with pytest.raises(OscError) as caught:
        parse(data)
    assert str(caught.value)


async def test_the_server_answers_on_the_senders_socket(osc):
    osc.send(msg("/perform/ping", 42, "hello"), msg("/perform/nothing"))
    osc.sock.settimeout(2.0)
    pong = OscMessage(await asyncio.to_thread(osc.sock.recv, 65536))
    assert (pong.address, pong.params) == ("/perform/pong", [42, "hello"])
    refused = OscMessage(await asyncio.to_thread(osc.sock.recv, 65536))
    assert refused.address == "/perform/refused" and refused.params[0] == "/perform/nothing"
    assert osc.stats.commands == 1 and osc.stats.unknown_address == 1


async def test_immediate_and_past_bundles_apply_everything(osc):
    inner = bundle(IMMEDIATELY, msg("/label", "nested"))
    osc.send(bundle(IMMEDIATELY, msg("/walk/speed", 0.5), msg("/count", 6), inner))
    await until(lambda: osc.stats.applied == 3)
    assert (value(osc.store, "walk/speed"), value(osc.store, "count")) == (0.5, 6)
    assert value(osc.store, "label") == "nested"
    osc.send(bundle(time.time() - 5.0, msg("/walk/speed", 0.25)))
    await until(lambda: osc.stats.applied == 4)
    assert value(osc.store, "walk/speed") == 0.25 and osc.stats.scheduled == 0


async def test_future_bundle_waits_without_blocking_the_loop(osc):
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    sent = time.monotonic()
    osc.send(bundle(time.time() + 0.3, msg("/walk/speed", 0.75), msg("/count", 7)))
    await until(lambda: osc.stats.scheduled == 2)
    assert value(osc.store, "walk/speed") == 0.125  # held, not applied yet
    await until(lambda: osc.stats.applied == 2, timeout=2.0)
    stop.set()
    await task
    delay = osc.applied[0][2] - sent
    assert 0.25 <= delay < 0.6, delay
    assert (value(osc.store, "walk/speed"), value(osc.store, "count")) == (0.75, 7)
    assert len(gaps) > 15 and max(gaps) < 0.1, max(gaps)


async def test_held_messages_apply_in_timetag_order_not_arrival_order(osc):
    now = time.time()
    osc.send(bundle(now + 0.30, msg("/count", 3)),
             bundle(now + 0.10, msg("/count", 1), bundle(now + 0.20, msg("/count", 2))),
             bundle(now + 0.20, msg("/label", "same tag, later")),
             msg("/count", 0))
    await until(lambda: len(osc.applied) == 5, timeout=2.0)
    assert [v for _, v, _ in osc.applied] == [0, 1, 2, "same tag, later", 3]
    assert osc.stats.scheduled == 4 and osc.router.held == 0


async def test_bundle_beyond_the_cap_is_applied_now_and_counted(osc):
    osc.send(bundle(time.time() + 60.0, msg("/walk/speed", 0.75)))
    await until(lambda: osc.stats.beyond_cap == 1)
    assert "cap" in osc.stats.last_error
    assert osc.stats.scheduled == 0 and value(osc.store, "walk/speed") == 0.75


async def test_garbage_is_malformed_and_receiver_keeps_working(osc):
    rng = random.Random(7)
    garbage = [b"\x00\x01garbage", b"", b"#bundle\0", b"/walk/speed\0,x\0\0",
               b"/count\0\0,r\0\0\xff\0\0\xff",  # RGBA: bytes, which no number param takes
               b"#bundle\0" + struct.pack(">Qi", 1, -4),  # hangs python-osc's own parser
               *(b"\xff" + rng.randbytes(rng.randrange(1, 200)) for _ in range(5))]
    osc.send(*garbage)
    await until(lambda: osc.stats.malformed == len(garbage) - 1)
    assert osc.stats.bad_args == 1  # the RGBA packet is well formed, but no param takes it
    osc.send(msg("/walk/speed", 0.5))
    await until(lambda: value(osc.store, "walk/speed") == 0.5)
    assert osc.stats.received == 2


def test_negative_bundle_size_does_not_hang():
    router = OscRouter(make_store())
    data = b"#bundle\0" + struct.pack(">Qi", 1, -4)
    worker = threading.Thread(target=router.receive, args=(data, quiet_peer()), daemon=True)
    worker.start()
    worker.join(2.0)
    assert not worker.is_alive() and router.stats.malformed == 1


async def test_warnings_are_throttled_to_one_line_per_kind(monkeypatch, caplog):
    router = OscRouter(make_store())
    caplog.set_level(logging.WARNING, logger="perform.osc")
    for i in range(100):
        router.receive(msg(f"/nope/{i}", 1.0), quiet_peer())
    router.receive(msg("/walk/speed", "fast"), quiet_peer())  # another kind: its own line
    assert router.stats.unknown_address == 100
    assert [r.getMessage() for r in caplog.records] == [
        "no param at /nope/0", "walk/speed expects a number, got 'fast'"]
    monkeypatch.setattr(router_module, "LOG_EVERY", 0.02)
    await asyncio.sleep(0.03)
    router.receive(msg("/nope", 1.0), quiet_peer())
    assert len(caplog.records) == 3 and "+99 like it" in caplog.records[-1].getMessage()

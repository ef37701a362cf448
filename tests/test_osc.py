"""OSC input/output over real UDP sockets on 127.0.0.1."""

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
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from perform.core.params import ParamSpec, ParamStore
from perform.io import osc as osc_module
from perform.io.osc import OscFeedback, OscReceiver, OscStats, serve_osc

SPECS = [
    ParamSpec("walk/speed", 0.125, 0.0, 1.0),
    ParamSpec("layer/1/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/2/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/10/opacity", 1.0, 0.0, 1.0),
    ParamSpec("layer/1/fx/opacity", 1.0, 0.0, 1.0),
    ParamSpec("count", 3, 0, 10),
    ParamSpec("flag", False),
    ParamSpec("label", "hi"),
]


def make_store() -> ParamStore:
    store = ParamStore()
    store.declare(SPECS)
    return store


def msg(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


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
    store, stats, applied = make_store(), OscStats(), []
    transport = await serve_osc(store, "127.0.0.1", 0, stats,
                                on_applied=lambda n, v: applied.append((n, v, time.monotonic())))
    port = transport.get_extra_info("sockname")[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(*datagrams: bytes) -> None:
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))

    yield SimpleNamespace(store=store, stats=stats, applied=applied, port=port, send=send)
    sock.close()
    transport.close()


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
    msg("/count", [1, 2]),
])
async def test_bad_args_leave_value_unchanged(osc, data):
    osc.send(data)
    await until(lambda: osc.stats.bad_args == 1)
    assert value(osc.store, "walk/speed") == 0.125
    assert value(osc.store, "count") == 3
    assert osc.stats.last_error
    assert osc.stats.applied == 0


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


async def test_bundle_too_far_ahead_is_refused(osc):
    osc.send(bundle(time.time() + 60.0, msg("/walk/speed", 0.75)))
    await until(lambda: osc.stats.bad_args == 1)
    assert "ahead" in osc.stats.last_error
    assert osc.stats.scheduled == 0 and value(osc.store, "walk/speed") == 0.125


async def test_garbage_is_malformed_and_receiver_keeps_working(osc):
    rng = random.Random(7)
    garbage = [b"\x00\x01garbage", b"", b"#bundle\0", b"/walk/speed\0,x\0\0",
               b"/count\0\0,r\0\0\xff\0\0\xff",  # RGBA: python-osc would hand us an int
               b"#bundle\0" + struct.pack(">Qi", 1, -4),  # hangs python-osc's own parser
               *(b"\xff" + rng.randbytes(rng.randrange(1, 200)) for _ in range(5))]
    osc.send(*garbage)
    await until(lambda: osc.stats.malformed == len(garbage))
    osc.send(msg("/walk/speed", 0.5))
    await until(lambda: value(osc.store, "walk/speed") == 0.5)
    assert osc.stats.received == 1


def test_negative_bundle_size_does_not_hang():
    receiver, stats = OscReceiver(make_store(), OscStats()), OscStats()
    receiver.stats = stats
    data = b"#bundle\0" + struct.pack(">Qi", 1, -4)
    worker = threading.Thread(target=receiver.datagram_received, args=(data, None), daemon=True)
    worker.start()
    worker.join(2.0)
    assert not worker.is_alive() and stats.malformed == 1


async def test_fuzzed_packets_never_raise(caplog):
    store, stats = make_store(), OscStats()
    receiver = OscReceiver(store, stats)
    rng = random.Random(3)
    seeds = [msg("/walk/speed", 0.5), msg("/layer/*/opacity", 0.5, "x"),
             bundle(IMMEDIATELY, msg("/count", 2), bundle(IMMEDIATELY, msg("/flag", True)))]
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        receiver.datagram_received(bytes(data[: rng.randrange(len(data) + 1)]), ("x", 1))
    receiver.connection_lost(None)
    assert stats.malformed > 0
    assert not [r for r in caplog.records if r.name != "perform.osc"]  # python-osc kept quiet


async def test_warnings_are_throttled(monkeypatch, caplog):
    receiver, stats = OscReceiver(make_store(), OscStats()), OscStats()
    receiver.stats = stats
    caplog.set_level(logging.WARNING, logger="perform.osc")
    for _ in range(100):
        receiver.datagram_received(msg("/nope", 1.0), None)
    receiver.datagram_received(msg("/other", 1.0), None)  # new address: reported at once
    assert stats.unknown_address == 101
    assert [r.getMessage() for r in caplog.records] == ["no param at /nope", "no param at /other"]
    monkeypatch.setattr(osc_module, "LOG_EVERY", 0.02)
    await asyncio.sleep(0.03)
    receiver.datagram_received(msg("/nope", 1.0), None)
    assert len(caplog.records) == 3 and "+99 similar" in caplog.records[-1].getMessage()


def test_feedback_sends_error_to_targets():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2.0)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nobody listens there any more
    feedback = OscFeedback()
    try:
        feedback.add_target("127.0.0.1", dead_port)
        feedback.add_target("localhost", listener.getsockname()[1])
        assert len(feedback.targets) == 2
        for _ in range(3):  # ICMP unreachable from the dead port must not raise
            feedback.send_error("patches/walk.py", 12, "NameError: name 'x' is not defined")
        received = OscMessage(listener.recv(65536))
        assert received.address == "/perform/error"
        assert received.params == ["patches/walk.py", 12, "NameError: name 'x' is not defined"]
        assert feedback.send("/perform/bad", object()) == 0
        assert feedback.errors >= 1 and "cannot build" in feedback.last_error
    finally:
        feedback.close()
        listener.close()

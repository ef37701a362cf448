"""Fuzzing: thousands of random and mutated OSC packets; nothing raises, nothing valid is lost."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from pathlib import Path

from conftest import msg, wait_for
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

from perform.core.params import ParamSpec, ParamStore
from perform.io.osc import OscRouter, Peer

ROOT = Path(__file__).resolve().parent.parent
ADDRESSES = ["/walk/speed", "/walk/*", "/pad", "/label", "/nope", "/perform/ping", "/w{a,b}",
             "/[", "/perform/fps", "/perform/preset/load"]


def random_message(rng: random.Random) -> bytes:
    """A well-formed message with random arguments of every type tag."""
    makers = [lambda: rng.uniform(-1e6, 1e6), lambda: rng.randrange(-2**31, 2**31),
              lambda: rng.choice([True, False, None, float("nan"), float("inf")]),
              lambda: rng.randbytes(rng.randrange(1, 8)), lambda: "x" * rng.randrange(70000),
              lambda: [rng.random() for _ in range(rng.randrange(4))]]
    args = [rng.choice(makers)() for _ in range(rng.randrange(4))]
    return msg(rng.choice(ADDRESSES), *args)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        choice = rng.randrange(4)
        if choice == 0 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 1:
            del out[rng.randrange(len(out) + 1):]
        elif choice == 2:
            at = rng.randrange(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif out:
            at = rng.randrange(0, len(out), 4) if len(out) >= 4 else 0
            out[at:at + 4] = struct.pack(">i", rng.choice([-1, 0, 3, 1 << 30, len(out)]))
    return bytes(out)


def bundle(*packets: bytes, at: float = IMMEDIATELY) -> bytes:
    builder = OscBundleBuilder(at)
    for data in packets:
        builder.add_content(OscBundle(data) if data.startswith(b"#bundle") else OscMessage(data))
    return builder.build().dgram


async def test_many_thousand_packets_never_raise_and_valid_ones_still_apply(caplog):
    store = ParamStore()
    store.declare([ParamSpec("walk/speed", 0.5, 0.0, 1.0), ParamSpec("pad", (0.5, 0.5), 0, 1),
                   ParamSpec("label", "hi")])
    replies: list[bytes] = []
    router = OscRouter(store, commands={"/perform/ping": lambda args, peer: None})
    peer = Peer("fuzzer", 1, "udp", replies.append)
    rng = random.Random(2026)
    seeds = [msg("/walk/speed", 0.25), msg("/pad", 0.1, 0.9), msg("/label", "ok"),
             bundle(msg("/walk/speed", 0.5), bundle(msg("/label", "nested"))),
             bundle(msg("/pad", 0.3, 0.3), at=time.time() + 0.05)]
    caplog.set_level(logging.WARNING, logger="perform.osc")
    started = time.monotonic()
    for i in range(20000):
        kind = i % 3
        data = (rng.randbytes(rng.randrange(64)) if kind == 0 else
                mutate(rng, rng.choice(seeds)) if kind == 1 else random_message(rng))
        router.receive(data, peer)
        if i % 500 == 0:  # a valid message in the middle of the garbage always lands
            value = rng.randrange(1024) / 1024  # exact in float32
            router.receive(msg("/walk/speed", value), peer)
            assert store.targets()["walk/speed"] == value
    took = time.monotonic() - started
    await asyncio.sleep(0.1)  # held bundles come due; nothing may blow up then either
    stats = router.stats
    assert stats.malformed > 1000 and stats.bad_args > 100 and stats.unknown_address > 100
    assert stats.applied > 0
    kinds = {"malformed", "bad_args", "unknown_address", "beyond_cap", "queue_full"}
    assert len(caplog.records) <= len(kinds) * (int(took) + 2)  # one line per kind a second
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]
    router.close()


def test_a_live_show_survives_garbage_on_udp_and_tcp(live_show):
    live = live_show(ROOT / "patches" / "spacewalk.py")
    rng = random.Random(7)
    seeds = [msg("/walk/speed", 0.25), bundle(msg("/walk/size", 2.0)), msg("/perform/ping")]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.create_connection(("127.0.0.1", live.osc_port))
    frames_before = len(live.recorder.frames)
    for i in range(3000):
        data = mutate(rng, rng.choice(seeds)) if i % 2 else rng.randbytes(rng.randrange(1, 80))
        udp.sendto(data, ("127.0.0.1", live.osc_port))
        tcp.sendall(b"\xc0" + data.replace(b"\xc0", b"") + b"\xc0")  # SLIP-framed garbage
        if i % 100 == 0:
            time.sleep(0.001)  # stay under the kernel's buffer: this tests parsing, not loss
    # a ping behind the garbage: once its pong is back, no garbage can overwrite what follows
    tcp.sendall(b"\xc0" + msg("/perform/ping", "drained") + b"\xc0")
    tcp.settimeout(10)
    answers = b""
    while b"drained" not in answers:
        answers += tcp.recv(65536)
    udp.sendto(msg("/walk/speed", 0.875), ("127.0.0.1", live.osc_port))
    tcp.sendall(b"\xc0" + msg("/walk/size", 3.5) + b"\xc0")
    wait_for(lambda: live.show.store.targets()["walk/speed"] == 0.875, what="valid UDP")
    wait_for(lambda: live.show.store.targets()["walk/size"] == 3.5, what="valid TCP")
    osc = live.state()["osc"]
    assert osc["malformed"] > 1000 and osc["tcp_clients"] == 1
    wait_for(lambda: len(live.recorder.frames) > frames_before + 10, what="frames go on")
    udp.close()
    tcp.close()

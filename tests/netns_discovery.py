"""Advertise and discover over mDNS; run only in a private network namespace (test_discovery).

`discover`: two OSCQuery servers on 127.0.0.1 advertise under one name; python-oscquery's
browser must find both `_oscjson._tcp` and both `_osc._udp` services under distinct names,
resolve their ports and read /walk/speed over HTTP; closing one withdraws it.
`unavailable`: the loopback interface is down, so advertising returns None with one warning.
Exits 0 on success; otherwise prints what failed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections.abc import Callable

from aiohttp import web
from pythonoscquery.osc_query_browser import OSCQueryBrowser
from pythonoscquery.osc_query_client import OSCQueryClient

from perform.core.params import ParamSpec, ParamStore
from perform.io.discovery import advertise
from perform.io.oscquery import OscQuery


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


async def serve(store: ParamStore) -> tuple[web.AppRunner, int, int]:
    """An OSCQuery server and a bound UDP port, as a show would have them."""
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                 local_addr=("127.0.0.1", 0))
    osc_port = udp.get_extra_info("sockname")[1]
    info = {"NAME": "perform", "OSC_IP": "127.0.0.1", "OSC_PORT": osc_port,
            "OSC_TRANSPORT": "UDP"}
    runner = web.AppRunner(OscQuery(store, lambda: info, lambda data, reply: None).app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1], osc_port


async def discover() -> None:
    store = ParamStore()
    store.declare([ParamSpec("walk/speed", 0.05, 0.0, 1.0, doc="loops a second")])
    servers = [await serve(store) for _ in range(2)]
    adverts = [await advertise("perform", "127.0.0.1", http, osc) for _, http, osc in servers]
    if None in adverts:
        sys.exit("advertise returned None")
    browser = await asyncio.to_thread(OSCQueryBrowser)
    try:
        await until(lambda: all(browser.get_discovered_oscquery())
                    and len(browser.get_discovered_oscquery()) == 2
                    and len(browser.get_discovered_osc()) == 2, "both servers are discovered")
        found = browser.get_discovered_oscquery()
        if {info.port for info in found} != {http for _, http, _ in servers}:
            sys.exit(f"wrong _oscjson._tcp ports: {found}")
        if {info.port for info in browser.get_discovered_osc()} != {o for *_, o in servers}:
            sys.exit(f"wrong _osc._udp ports: {browser.get_discovered_osc()}")
        for info in found:
            client = OSCQueryClient(info)
            node = await asyncio.to_thread(client.query_node, "/walk/speed")
            host = await asyncio.to_thread(client.get_host_info)
            if node is None or node.value != [0.05] or host.name != "perform":
                sys.exit(f"{info.name}: read {node!r} and {host!r}")
        print("discovered", sorted(info.name for info in found))
        await adverts[0].close()
        await until(lambda: len(browser.get_discovered_oscquery()) == 1,
                    "the closed advertisement is withdrawn")
        print("withdrawn")
    finally:
        await asyncio.to_thread(browser.zc.close)
        await adverts[1].close()
        for runner, _, _ in servers:
            await runner.cleanup()


async def unavailable() -> None:
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logging.getLogger("perform.discovery").addHandler(handler)
    for host in ("127.0.0.1", "0.0.0.0", "203.0.113.7", "localhost"):
        warnings.clear()
        if await advertise("perform", host, 8000, 9000) is not None:
            sys.exit(f"advertising on {host} with the loopback down did not return None")
        if len(warnings) != 1:
            sys.exit(f"{host}: expected one warning, got {[w.getMessage() for w in warnings]}")
        print("unavailable:", warnings[0].getMessage())


if __name__ == "__main__":
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:  # a fresh namespace has only its own loopback
        sys.exit(f"refusing to send mDNS with interfaces {interfaces}: run me under unshare -n")
    asyncio.run({"discover": discover, "unavailable": unavailable}[sys.argv[1]]())

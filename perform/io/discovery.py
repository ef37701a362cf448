"""Zeroconf (mDNS): announce the show, so that controllers list it without typing an address.

Two services: `_oscjson._tcp` at the OSCQuery HTTP port and `_osc._udp` at the OSC UDP port.
Announcements go only out of the interfaces behind the address the servers bind, so a show
bound to 127.0.0.1 stays on the loopback interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

log = logging.getLogger("perform.discovery")

OSCJSON = "_oscjson._tcp.local."
OSC = "_osc._udp.local."


def _interfaces(host: str) -> tuple[InterfaceChoice | list[str], list[str]]:
    """(interfaces to announce on, addresses to announce) for a server bound to `host`."""
    if host not in ("", "0.0.0.0"):
        return [host], [host]
    found: set[str] = {ip.ip for adapter in ifaddr.get_adapters()
                       for ip in adapter.ips if ip.is_IPv4}
    remote = sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)
    return InterfaceChoice.All, remote or sorted(found)


class Advertisement:
    """Services being announced; `close()` withdraws them (mDNS goodbyes) and stops zeroconf."""

    def __init__(self, zeroconf: AsyncZeroconf, infos: list[ServiceInfo]) -> None:
        self.zeroconf, self.infos = zeroconf, infos
        self._task = asyncio.create_task(self._register())

    async def _register(self) -> None:
        async def one(info: ServiceInfo) -> None:
            await (await self.zeroconf.async_register_service(info, allow_name_change=True))

        try:
            await asyncio.gather(*(one(info) for info in self.infos))
        except Exception as exc:
            log.warning("zeroconf: could not advertise %s: %s", self.infos[0].name, exc)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.zeroconf.async_close()


async def advertise(name: str, host: str, oscquery_port: int,
                    osc_port: int) -> Advertisement | None:
    """Announce "<name> <port>" for both services on the interfaces behind `host`.

    Returns at once: probing the network for name clashes (about 1.5 s) goes on in the
    background, and a clash with another machine renames the instance instead of failing.
    Returns None with one warning when mDNS cannot start there (no such interface, no
    multicast); a failure during the background registration is one warning too.
    """
    try:
        interfaces, addresses = _interfaces(host)
        server = f"{socket.gethostname().split('.')[0]}-perform-{oscquery_port}.local."
        infos = [ServiceInfo(kind, f"{name} {port}.{kind}", port=port, server=server,
                             parsed_addresses=addresses)
                 for kind, port in ((OSCJSON, oscquery_port), (OSC, osc_port))]
        zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    except Exception as exc:
        log.warning("zeroconf: not advertising on %s: %s", host or "0.0.0.0", exc)
        return None
    return Advertisement(zeroconf, infos)

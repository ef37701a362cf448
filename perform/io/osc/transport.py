"""OSC over UDP and TCP on one port number, both feeding one `OscRouter`.

UDP: the socket is drained in batches each time it becomes readable (asyncio's datagram
transport reads one datagram per loop turn, which caps a Python server near 40k msg/s).
TCP: a client picks its framing with its first byte: 0x00 starts an OSC 1.0 length prefix
(any packet under 16 MiB), anything else (0xC0 END, or "/" or "#" from a client that only
ends frames) is OSC 1.1 SLIP. Replies go back in the client's framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from typing import Any

from perform.io.osc.router import OscRouter, Peer

MAX_PACKET = 65536  # bytes; a TCP frame may not be larger than a UDP datagram can be
MAX_CLIENTS = 64  # TCP connections at once; more are refused and counted
BATCH = 512  # datagrams read per wake-up before the loop gets a turn
END, ESC, ESC_END, ESC_ESC = b"\xc0", b"\xdb", b"\xdc", b"\xdd"
_SIZE = struct.Struct(">i")


class OscServer:
    """Listens for OSC on UDP and TCP host:port (0 picks a port free for both)."""

    def __init__(self, router: OscRouter) -> None:
        self.router = router
        self.clients: set[_StreamClient] = set()
        self.refused = 0  # TCP connections turned away at MAX_CLIENTS
        self._udp: socket.socket | None = None
        self._udp_endpoint: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._peers: dict[Any, Peer] = {}
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> None:
        for _ in range(20 if port == 0 else 1):  # port 0: retry until TCP gets UDP's number
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
                chosen = udp.getsockname()[1]
                loop = asyncio.get_running_loop()
                self._tcp = await loop.create_server(lambda: _StreamClient(self), host, chosen,
                                                     reuse_address=True)
            except OSError as exc:
                udp.close()
                if port == 0 and exc.errno in (98, 48, 10048):  # EADDRINUSE: try another
                    continue
                raise
            break
        else:
            raise OSError(98, "no port free for both UDP and TCP")
        self.address = (host, chosen)
        udp.setblocking(False)
        with contextlib.suppress(OSError):  # absorbs bursts while a frame renders
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._udp = udp
        try:
            loop.add_reader(udp.fileno(), self._drain)
        except NotImplementedError:  # Windows' proactor loop: one datagram per turn
            self._udp_endpoint, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramFallback(self), sock=udp)

    def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        for client in list(self.clients):
            client.transport.close()
        if self._udp_endpoint is not None:
            self._udp_endpoint.close()
        elif self._udp is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
        self.router.close()

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped because we read too slowly (Linux only, else None)."""
        if self._udp is None:
            return None
        try:
            inode = str(os.fstat(self._udp.fileno()).st_ino)
            with open("/proc/net/udp") as table:
                for line in table:
                    fields = line.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[-1])
        except (OSError, ValueError):
            pass
        return None

    def _drain(self) -> None:
        udp = self._udp
        assert udp is not None
        for _ in range(BATCH):
            try:
                data, addr = udp.recvfrom(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error from an earlier reply: keep reading
                continue
            self.datagram(data, addr)

    def datagram(self, data: bytes, addr: Any) -> None:
        peer = self._peers.get(addr)
        if peer is None:
            if len(self._peers) > 1024:
                self._peers.clear()
            peer = self._peers[addr] = Peer(addr[0], addr[1], "udp",
                                            lambda reply: self._send_udp(reply, addr))
        self.router.receive(data, peer)

    def _send_udp(self, data: bytes, addr: Any) -> None:
        if self._udp is not None:
            with contextlib.suppress(OSError):  # a full buffer or a gone peer loses one reply
                self._udp.sendto(data, addr)


class _DatagramFallback(asyncio.DatagramProtocol):
    def __init__(self, server: OscServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.datagram(data, addr)


class _StreamClient(asyncio.Protocol):
    """One TCP connection: reassembles frames in either framing and routes each packet."""

    def __init__(self, server: OscServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.slip: bool | None = None  # decided by the first byte
        self.skipping = False  # inside an oversized SLIP frame, dropping up to its END
        self.transport: asyncio.Transport
        self.peer: Peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.server.clients) >= MAX_CLIENTS:
            self.server.refused += 1
            transport.abort()
            return
        self.server.clients.add(self)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(host, port, "tcp", self._send)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.clients.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.slip is None:
            self.slip = data[:1] != b"\0"
        self.buffer += data
        if self.slip:
            self._slip_frames()
        else:
            self._sized_frames()

    def _sized_frames(self) -> None:
        buffer, index = self.buffer, 0
        while len(buffer) - index >= 4:
            (size,) = _SIZE.unpack_from(buffer, index)
            if not 0 < size <= MAX_PACKET:  # the stream cannot be resynchronised
                self._reject(f"bad OSC 1.0 frame size {size} from {self.peer.host}")
                return
            if len(buffer) - index - 4 < size:
                break
            self.server.router.receive(bytes(buffer[index + 4:index + 4 + size]), self.peer)
            index += 4 + size
        del buffer[:index]

    def _slip_frames(self) -> None:
        *frames, rest = bytes(self.buffer).split(END)
        for frame in frames:
            if self.skipping:  # the tail of a frame that was too big
                self.skipping = False
            elif frame:
                self._slip_frame(frame)
        if len(rest) > 2 * MAX_PACKET:  # escaping can double a frame
            self.server.router.problem("malformed", f"SLIP frame from {self.peer.host} is "
                                       f"over {MAX_PACKET} bytes; dropped")
            rest, self.skipping = b"", True
        self.buffer = bytearray(rest)

    def _slip_frame(self, frame: bytes) -> None:
        if ESC in frame:
            escapes = frame.count(ESC + ESC_END) + frame.count(ESC + ESC_ESC)
            if escapes != frame.count(ESC):
                self.server.router.problem("malformed", f"bad SLIP escape from {self.peer.host}")
                return
            frame = frame.replace(ESC + ESC_END, END).replace(ESC + ESC_ESC, ESC)
        self.server.router.receive(frame, self.peer)

    def _reject(self, text: str) -> None:
        self.server.router.problem("malformed", text + "; connection closed")
        self.transport.close()

    def _send(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.slip:
            body = data.replace(ESC, ESC + ESC_ESC).replace(END, ESC + ESC_END)
            self.transport.write(END + body + END)
        else:
            self.transport.write(_SIZE.pack(len(data)) + data)

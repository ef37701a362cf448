"""Print the OSC that arrives on a UDP port: perform's feedback, or what a controller sends.

    python tools/osc_monitor.py --port 9001 --register 127.0.0.1:9000 --quiet-phase
    python tools/osc_monitor.py --port 9000 --filter '/walk/*'

The first asks perform for feedback (and stops it again on Ctrl-C); the second stands in for
perform (stop it first) to show exactly what TouchDesigner, Max or a phone sends. Each line is
the arrival time, the address, the type tags and the arguments, written the way
tools/osc_send.py reads them back. osc_send.py imports this module to print replies.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import signal
import socket
import struct
import sys
import time
from typing import NamedTuple

from pythonosc import osc_message
from pythonosc.parsing import osc_types

BUNDLE = b"#bundle\0"
NTP_EPOCH = 2208988800  # seconds from 1900 (OSC timetags) to 1970 (Unix time)
IMMEDIATELY = 0.0  # the timetag of a bundle to apply on arrival
MAX_NESTING = 16  # bundles inside bundles; deeper ones are refused rather than recursed into
# python-osc parses these; on any other tag it logs to stderr and drops the argument.
PARSED_TAGS = frozenset("ihfdsbrmtTFN[]")


class ToolError(Exception):
    """A failure worth one line to the user, not a traceback."""


class Malformed(ValueError):
    """A datagram that is not well-formed OSC; the message says what is wrong with it."""


class Received(NamedTuple):
    address: str
    tags: str  # the type tag string without its comma; "" when the message has none
    args: list[object]
    timetag: float | None  # None: not in a bundle; IMMEDIATELY or Unix seconds: bundled


def parse(packet: bytes, timetag: float | None = None, depth: int = 0) -> list[Received]:
    """Every message in a packet, bundles flattened, each with its innermost bundle's timetag.

    Bundles are walked here rather than by python-osc, which ignores element sizes that run
    past the end and loops on negative ones.
    """
    if packet.startswith(b"/"):
        return [_message(packet, timetag)]
    if not packet.startswith(BUNDLE):
        raise Malformed("neither a message (/...) nor a bundle (#bundle)")
    if depth >= MAX_NESTING:
        raise Malformed(f"bundles nested more than {MAX_NESTING} deep")
    if len(packet) < 16:
        raise Malformed("bundle shorter than its 16-byte header")
    seconds, fraction = struct.unpack_from(">II", packet, 8)
    inner = IMMEDIATELY if (seconds, fraction) == (0, 1) else (
        seconds - NTP_EPOCH + fraction / 2**32)
    out: list[Received] = []
    index = 16
    while index < len(packet):
        if index + 4 > len(packet):
            raise Malformed(f"bundle element size cut off at byte {index}")
        (size,) = struct.unpack_from(">i", packet, index)
        end = index + 4 + size
        if size < 0 or end > len(packet):
            raise Malformed(f"bundle element of {size} bytes at byte {index} runs past the end")
        out += parse(packet[index + 4:end], inner, depth + 1)
        index = end
    return out


def _message(data: bytes, timetag: float | None) -> Received:
    try:
        address, index = osc_types.get_string(data, 0)
        tags = osc_types.get_string(data, index)[0] if index < len(data) else ","
        if not tags.startswith(","):
            raise Malformed(f"{address}: type tags {tags!r} do not start with ','")
        unknown = set(tags[1:]) - PARSED_TAGS
        if unknown:
            raise Malformed(f"{address}: unsupported type tag {min(unknown)!r}")
        return Received(address, tags[1:], osc_message.OscMessage(data).params, timetag)
    except (osc_types.ParseError, osc_message.ParseError, UnicodeDecodeError) as exc:
        raise Malformed(str(exc)) from None


def clock(unix: float) -> str:
    """Local wall-clock time to the millisecond, short enough to scan down a column."""
    return time.strftime("%H:%M:%S", time.localtime(unix)) + f".{int(unix % 1 * 1000):03d}"


def show(value: object) -> str:
    """One argument as osc_send.py would type it back in (floats keep a '.', strings quoted)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "nil"
    if isinstance(value, float):
        text = f"{value:.7g}"  # a float32 carries about 7 significant digits
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    if isinstance(value, list):
        return "[" + " ".join(show(item) for item in value) + "]"
    return repr(value)


def line(message: Received, now: float) -> str:
    parts = [clock(now), message.address, "," + message.tags, *map(show, message.args)]
    if message.timetag == IMMEDIATELY:
        parts.append("[bundle: immediately]")
    elif message.timetag is not None:
        ahead = message.timetag - now
        # A timetag from a clock far off from ours gets no date, only the distance.
        when = f"at {clock(message.timetag)}, " if abs(ahead) < 86400 else ""
        parts.append(f"[bundle: {when}{ahead:+.3f} s]")
    return " ".join(parts)


def endpoint(text: str) -> tuple[str, int]:
    """HOST:PORT for argparse; IPv6 hosts go in brackets, [::1]:9000."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=port_number, default=9001,
                        help="UDP port to listen on (default 9001; 0 picks a free one)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    parser.add_argument("--register", type=endpoint, metavar="HOST:PORT",
                        help="perform's OSC port: ask it for feedback at start, stop on exit")
    parser.add_argument("--filter", action="append", default=[], metavar="PATTERN",
                        help="only addresses matching this shell pattern, e.g. '/walk/*' "
                        "(repeatable: any may match)")
    parser.add_argument("--quiet-phase", action="store_true",
                        help="hide /perform/phase, which perform sends every frame")
    return parser.parse_args(argv)


def wanted(address: str, args: argparse.Namespace) -> bool:
    if args.quiet_phase and address == "/perform/phase":
        return False
    return not args.filter or any(fnmatch.fnmatchcase(address, p) for p in args.filter)


def command(address: str, port: int) -> bytes:
    """/perform/feedback/add or /remove with our port as one int32 argument."""
    return osc_types.write_string(address) + osc_types.write_string(",i") + struct.pack(">i", port)


def listen(sock: socket.socket, args: argparse.Namespace) -> None:
    """Print what arrives until Ctrl-C; a bad packet costs one line, never the monitor."""
    while True:
        try:
            packet, sender = sock.recvfrom(65536)
        except ConnectionError:  # Windows reports an ICMP "port unreachable" here
            print(f"{clock(time.time())} (nothing listening where we last sent)", flush=True)
            continue
        now = time.time()
        try:
            messages = parse(packet)
        except Malformed as exc:
            print(f"{clock(now)} malformed packet from {sender[0]}:{sender[1]} "
                  f"({len(packet)} bytes): {exc}", flush=True)
            continue
        for message in messages:
            if wanted(message.address, args):
                print(line(message, now), flush=True)


def udp_address(host: str, port: int, family: int = socket.AF_UNSPEC) -> tuple[int, tuple]:
    """The socket family and address to use for HOST:PORT, or a ToolError that names the host."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {host!r}: {exc.strerror}") from None
    return family, address


def monitor(args: argparse.Namespace) -> None:
    family, address = udp_address(args.bind, args.port)
    server = udp_address(*args.register, family)[1] if args.register else None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(address)
        except OSError as exc:
            raise ToolError(
                f"cannot listen on udp {args.bind}:{args.port}: {exc.strerror}") from None
        port = sock.getsockname()[1]
        print(f"listening on udp {args.bind}:{port}", flush=True)
        if server:
            # Sent from the listening socket, so perform's answer (/perform/ok) shows here and
            # its feedback goes to the host it sees us on.
            try:
                sock.sendto(command("/perform/feedback/add", port), server)
            except OSError as exc:
                raise ToolError(f"cannot reach {server[0]}:{server[1]}: {exc.strerror}") from None
            print(f"sent /perform/feedback/add {port} to {server[0]}:{server[1]}", flush=True)
        try:
            listen(sock, args)
        except KeyboardInterrupt:
            if server:
                with contextlib.suppress(OSError):  # best effort: we are leaving anyway
                    sock.sendto(command("/perform/feedback/remove", port), server)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` ends it like Ctrl-C
    try:
        monitor(args)
    except ToolError as exc:
        print(f"osc_monitor: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Send one OSC message to perform from a terminal.

    python tools/osc_send.py /walk/speed 0.3
    python tools/osc_send.py /pad 0.3 0.7 -t ff
    python tools/osc_send.py /perform/ping hello --reply 0.5
    python tools/osc_send.py --slip /walk/size 2           (or --tcp: OSC 1.0 length prefixes)
    python tools/osc_send.py --at 0.5 /walk/speed 0.8      (a bundle due half a second from now)
    python tools/osc_send.py --repeat 20 --rate 10 /walk/speed 0.1

Arguments are typed by how they look: 1 int, 0.5 float, true/false, nil, anything else a
string; -t gives the types instead (i f d h s, and T F N, which take no argument). Replies
print the way tools/osc_monitor.py prints. Exit status 1, with one line, on any error.
"""

from __future__ import annotations

import argparse
import re
import socket
import struct
import sys
import time
from collections.abc import Callable

from osc_monitor import Malformed, ToolError, line, parse, port_number
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import BuildError, OscMessageBuilder

END, ESC, ESC_END, ESC_ESC = b"\xc0", b"\xdb", b"\xdc", b"\xdd"  # SLIP (RFC 1055), OSC 1.1
INT = re.compile(r"[+-]?\d+")
FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(?=[eE]))([eE][+-]?\d+)?")
WORDS = {"true": ("T", True), "false": ("F", False), "nil": ("N", None)}
VALUELESS = {"T": True, "F": False, "N": None}
CONVERT: dict[str, Callable[[str], object]] = {"i": int, "h": int, "f": float, "d": float,
                                               "s": str}
CONNECT_TIMEOUT = 5.0  # seconds

Arg = tuple[str, object]  # (OSC type tag, value)


def guess(text: str) -> Arg:
    """The type a performer most likely means; "inf" and "1_000" stay strings."""
    if text in WORDS:
        return WORDS[text]
    if INT.fullmatch(text):
        value = int(text)
        return ("i" if -(2**31) <= value < 2**31 else "h"), value
    if FLOAT.fullmatch(text):
        return "f", float(text)
    return "s", text


def typed(tags: str, texts: list[str]) -> list[Arg]:
    """Arguments under explicit type tags, oscsend-style: T, F and N consume no text."""
    wanted = sum(tag not in VALUELESS for tag in tags)
    if wanted != len(texts):
        raise ToolError(f"type tags {tags!r} take {wanted} argument(s), got {len(texts)}")
    rest = iter(texts)
    out: list[Arg] = []
    for tag in tags:
        if tag in VALUELESS:
            out.append((tag, VALUELESS[tag]))
            continue
        if tag not in CONVERT:
            raise ToolError(f"unknown type tag {tag!r} (use i f d h s T F N)")
        text = next(rest)
        try:
            out.append((tag, CONVERT[tag](text)))
        except ValueError:
            raise ToolError(f"{text!r} is not a valid {tag!r} argument") from None
    return out


def build(address: str, args: list[Arg]) -> OscMessage:
    if not address.startswith("/"):
        raise ToolError(f"an OSC address starts with '/', got {address!r}")
    builder = OscMessageBuilder(address)
    for tag, value in args:
        builder.add_arg(value, tag)
    try:
        return builder.build()
    except (BuildError, OverflowError, struct.error) as exc:
        raise ToolError(f"cannot encode the arguments: {exc}") from None


def datagram(message: OscMessage, at: float | None) -> bytes:
    """The message, or a bundle of it timetagged `at` seconds after this very send."""
    if at is None:
        return message.dgram
    bundle = OscBundleBuilder(time.time() + at)
    bundle.add_content(message)
    return bundle.build().dgram


def slip(packet: bytes) -> bytes:
    """Double-ended SLIP frame: escape ESC first so the END escapes are not escaped again."""
    body = packet.replace(ESC, ESC + ESC_ESC).replace(END, ESC + ESC_END)
    return END + body + END


def frame(packet: bytes, transport: str) -> bytes:
    if transport == "slip":
        return slip(packet)
    if transport == "tcp":
        return struct.pack(">i", len(packet)) + packet
    return packet


def unframe(buffer: bytearray, transport: str) -> list[bytes]:
    """Take the complete packets off the front of a TCP stream buffer; keep the rest."""
    packets = []
    if transport == "slip":
        *frames, rest = bytes(buffer).split(END)
        buffer[:] = rest
        for body in frames:
            if body:  # back-to-back ENDs delimit nothing
                packets.append(body.replace(ESC + ESC_END, END).replace(ESC + ESC_ESC, ESC))
        return packets
    while len(buffer) >= 4:
        (size,) = struct.unpack_from(">i", buffer)
        if size < 0:
            raise ToolError(f"the reply stream is not length-prefixed OSC (length {size})")
        if len(buffer) < 4 + size:
            break
        packets.append(bytes(buffer[4:4 + size]))
        del buffer[:4 + size]
    return packets


def connect(host: str, port: int, transport: str) -> socket.socket:
    """A socket connected to perform: UDP keeps replies from anyone else out, TCP needs it."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=kind)[0]
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(address)
    except ConnectionRefusedError:
        sock.close()
        raise ToolError(f"connection refused by {host}:{port} (is perform running?)") from None
    except OSError as exc:
        sock.close()
        raise ToolError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    return sock


def send(sock: socket.socket, packet: Callable[[], bytes], repeat: int, rate: float) -> None:
    """Send `repeat` times on a fixed schedule, so a slow send does not stretch the rest."""
    start = time.monotonic()
    for index in range(repeat):
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        sock.sendall(packet())


def replies(sock: socket.socket, transport: str, seconds: float) -> int:
    """Print every packet that comes back within `seconds`; how many messages did."""
    deadline = time.monotonic() + seconds
    buffer = bytearray()
    count = 0
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:  # perform closed the TCP connection
            break
        if transport == "udp":
            packets = [data]
        else:
            buffer += data
            packets = unframe(buffer, transport)
        for packet in packets:
            try:
                messages = parse(packet)
            except Malformed as exc:
                print(f"malformed reply ({len(packet)} bytes): {exc}", flush=True)
                continue
            for message in messages:
                print(line(message, time.time()), flush=True)
                count += 1
    return count


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("address", help="OSC address, e.g. /walk/speed")
    parser.add_argument("args", nargs="*", help="arguments, e.g. 0.3")
    parser.add_argument("--host", default="127.0.0.1", help="perform's host (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=9000, help="default 9000")
    framing = parser.add_mutually_exclusive_group()
    framing.add_argument("--tcp", dest="transport", action="store_const", const="tcp",
                         default="udp", help="TCP with OSC 1.0 length prefixes")
    framing.add_argument("--slip", dest="transport", action="store_const", const="slip",
                         help="TCP with OSC 1.1 SLIP frames")
    parser.add_argument("-t", "--type", dest="tags", help="type tags, e.g. ff (T F N take no "
                        "argument)")
    parser.add_argument("--at", type=float, metavar="SECONDS",
                        help="send a bundle timetagged this far in the future")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="send N times")
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ",
                        help="sends per second with --repeat (default 10)")
    parser.add_argument("--reply", type=float, metavar="SECONDS",
                        help="then print what comes back for this long")
    args = parser.parse_intermixed_args(argv)
    if args.repeat < 1 or args.rate <= 0:
        parser.error("--repeat needs at least 1 and --rate more than 0")
    if (args.at is not None and args.at < 0) or (args.reply is not None and args.reply < 0):
        parser.error("--at and --reply take seconds from now, not before")
    return args


def run(args: argparse.Namespace) -> int:
    values = typed(args.tags, args.args) if args.tags is not None else list(map(guess, args.args))
    message = build(args.address, values)
    with connect(args.host, args.port, args.transport) as sock:
        try:
            send(sock, lambda: frame(datagram(message, args.at), args.transport), args.repeat,
                 args.rate)
            if args.reply is not None and not replies(sock, args.transport, args.reply):
                print(f"osc_send: no reply within {args.reply:g} s", file=sys.stderr)
                return 1
        except ConnectionRefusedError:  # UDP: an ICMP "port unreachable" from an earlier send
            raise ToolError(f"nothing is listening on udp {args.host}:{args.port}") from None
        except OSError as exc:
            raise ToolError(f"{args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        return run(args)
    except ToolError as exc:
        print(f"osc_send: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""tools/osc_send.py and tools/osc_monitor.py as real processes on loopback sockets, and the
Max patch's wiring checked against the default patch's params.

What the tools put on the wire is decoded here independently: python-osc parses messages and
bundles, and the TCP framings (length prefix, SLIP) are undone by this file's own code.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import msg as osc
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parents[1]
SEND = ROOT / "tools" / "osc_send.py"
MONITOR = ROOT / "tools" / "osc_monitor.py"
MAXPAT = ROOT / "mappings" / "max" / "perform.maxpat"
SPACEWALK = ROOT / "patches" / "spacewalk.py"
# The server's own addresses, from the protocol perform documents.
PERFORM_IN = {"/perform/feedback/add", "/perform/feedback/remove", "/perform/ping",
              "/perform/reload", "/perform/patch/load", "/perform/preset/save",
              "/perform/preset/load", "/perform/fps"}
PERFORM_OUT = {"/perform/beat", "/perform/phase", "/perform/fps", "/perform/stats",
               "/perform/error", "/perform/patch", "/perform/pong", "/perform/refused",
               "/perform/ok"}
SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
TIMEOUT = 5.0


# --- wire helpers, written independently of the tools ---------------------------------------

def type_tags(dgram: bytes) -> str:
    """The type tag string of a message, read straight off the bytes."""
    start = (dgram.index(b"\0") // 4 + 1) * 4
    return dgram[start:dgram.index(b"\0", start)].decode()[1:]


def slip_decode(stream: bytes) -> list[bytes]:
    frames, current, escaped = [], bytearray(), False
    for byte in stream:
        if escaped:
            current.append({SLIP_ESC_END: SLIP_END, SLIP_ESC_ESC: SLIP_ESC}[byte])
            escaped = False
        elif byte == SLIP_ESC:
            escaped = True
        elif byte == SLIP_END:
            if current:
                frames.append(bytes(current))
            current = bytearray()
        else:
            current.append(byte)
    return frames


def slip_encode(packet: bytes) -> bytes:
    body = bytearray()
    for byte in packet:
        body += {SLIP_END: bytes([SLIP_ESC, SLIP_ESC_END]),
                 SLIP_ESC: bytes([SLIP_ESC, SLIP_ESC_ESC])}.get(byte, bytes([byte]))
    return bytes([SLIP_END]) + bytes(body) + bytes([SLIP_END])


def length_decode(stream: bytes) -> list[bytes]:
    packets = []
    while len(stream) >= 4:
        size = struct.unpack(">i", stream[:4])[0]
        assert len(stream) >= 4 + size, "a length prefix promises more than was sent"
        packets.append(stream[4:4 + size])
        stream = stream[4 + size:]
    assert not stream
    return packets


def whole(stream: bytes, framing: str) -> bool:
    """Whether a TCP stream holds one complete frame yet."""
    if framing == "slip":
        return len(stream) > 1 and stream[-1] == SLIP_END
    return len(stream) >= 4 and len(stream) >= 4 + struct.unpack(">i", stream[:4])[0]


def read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


# --- fixtures and process helpers ---------------------------------------------------------------

@pytest.fixture
def udp() -> Iterator[socket.socket]:
    """A UDP socket standing in for perform."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT)
        yield sock


@pytest.fixture
def tcp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(TIMEOUT)
        yield sock


def port(sock: socket.socket) -> str:
    return str(sock.getsockname()[1])


def send(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SEND), *args], capture_output=True, text=True,
                          timeout=10)


def start_send(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SEND), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class Monitor:
    """osc_monitor.py on a free port, its stdout read line by line without blocking the test."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(MONITOR), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self.port = 0

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self.lines.put(text.rstrip("\n"))

    def wait_ready(self) -> None:
        first = self.next_line()
        assert first.startswith("listening on udp 127.0.0.1:"), first
        self.port = int(first.rsplit(":", 1)[1])

    def next_line(self) -> str:
        return self.lines.get(timeout=TIMEOUT)

    def until(self, needle: str) -> list[str]:
        """Every line up to and including the first that contains `needle`."""
        seen = []
        while not seen or needle not in seen[-1]:
            seen.append(self.next_line())
        return seen

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a performer would; the exit status and stderr."""
        self.proc.send_signal(signal.SIGINT)
        return self.close()

    def close(self) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=TIMEOUT)
        finally:
            self.proc.kill()  # a no-op once it has exited
            self.proc.wait()
            self.pump.join(TIMEOUT)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self.proc.stdout.close()
            err = self.proc.stderr.read()
            self.proc.stderr.close()
        return self.proc.returncode, err


@pytest.fixture
def start_monitor() -> Iterator[Callable[..., Monitor]]:
    """Start monitors that are killed at teardown even when a test fails half-way."""
    started: list[Monitor] = []

    def start(*args: str) -> Monitor:
        monitor = Monitor(*args)
        started.append(monitor)
        monitor.wait_ready()
        return monitor

    yield start
    for monitor in started:
        if monitor.proc.returncode is None:
            monitor.proc.kill()
            monitor.close()


# --- osc_send ----------------------------------------------------------------------------------

def test_send_types_arguments_by_how_they_look(udp: socket.socket) -> None:
    result = send("--port", port(udp), "/walk/speed", "1", "0.5", "-2", "-0.25", "true", "false",
                  "nil", "hello", "1e3", "5000000000")
    assert result.returncode == 0, result.stderr
    data = udp.recv(65536)
    message = OscMessage(data)
    assert message.address == "/walk/speed"
    assert message.params == [1, 0.5, -2, -0.25, True, False, None, "hello", 1000.0, 5000000000]
    assert type_tags(data) == "ififTFNsfh"


def test_send_type_override_takes_no_text_for_t_f_n(udp: socket.socket) -> None:
    result = send("--port", port(udp), "-t", "fdhsTN", "/pad", "1", "2", "3", "4")
    assert result.returncode == 0, result.stderr
    data = udp.recv(65536)
    assert type_tags(data) == "fdhsTN"
    assert OscMessage(data).params == [1.0, 2.0, 3, "4", True, None]


def test_send_at_wraps_the_message_in_a_future_bundle(udp: socket.socket) -> None:
    before = time.time()
    result = send("--port", port(udp), "--at", "0.5", "/walk/size", "2.5")
    after = time.time()
    assert result.returncode == 0, result.stderr
    data = udp.recv(65536)
    assert OscBundle.dgram_is_bundle(data)
    bundle = OscBundle(data)
    assert before + 0.5 - 1e-3 <= bundle.timestamp <= after + 0.5 + 1e-3
    assert bundle.num_contents == 1
    message = bundle.content(0)
    assert (message.address, message.params) == ("/walk/size", [2.5])


def test_send_repeat_keeps_to_the_rate(udp: socket.socket) -> None:
    proc = start_send("--port", port(udp), "--repeat", "4", "--rate", "20", "/walk/speed", "0.1")
    arrivals = []
    for _ in range(4):
        assert OscMessage(udp.recv(65536)).params == [pytest.approx(0.1)]
        arrivals.append(time.monotonic())
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert 0.12 <= arrivals[-1] - arrivals[0] < 1.0  # three 50 ms gaps


def test_send_tcp_prefixes_each_packet_with_its_length(tcp: socket.socket) -> None:
    # The listen backlog completes the connection, so the tool can finish before we accept.
    result = send("--tcp", "--port", port(tcp), "/walk/speed", "0.25")
    assert result.returncode == 0, result.stderr
    conn, _ = tcp.accept()
    with conn:
        packets = length_decode(read_all(conn))
    assert len(packets) == 1
    message = OscMessage(packets[0])
    assert (message.address, message.params) == ("/walk/speed", [0.25])


def test_send_slip_frames_and_escapes_end_and_esc(tcp: socket.socket) -> None:
    # -2.0 as a float32 starts with byte 0xC0 (END); 219 as an int32 ends with 0xDB (ESC).
    result = send("--slip", "--port", port(tcp), "-t", "fi", "/x", "-2", "219")
    assert result.returncode == 0, result.stderr
    conn, _ = tcp.accept()
    with conn:
        stream = read_all(conn)
    assert stream[0] == stream[-1] == SLIP_END
    assert b"\xdb\xdc" in stream and b"\xdb\xdd" in stream
    frames = slip_decode(stream)
    assert len(frames) == 1
    assert OscMessage(frames[0]).params == [-2.0, 219]


def test_send_reply_prints_what_comes_back_over_udp(udp: socket.socket) -> None:
    proc = start_send("--port", port(udp), "--reply", "0.5", "/perform/ping", "7")
    data, sender = udp.recvfrom(65536)
    assert OscMessage(data).address == "/perform/ping"
    udp.sendto(osc("/perform/pong", 7), sender)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "/perform/pong ,i 7" in out


@pytest.mark.parametrize("framing", ["tcp", "slip"])
def test_send_reply_prints_what_comes_back_over_tcp(tcp: socket.socket, framing: str) -> None:
    decode = slip_decode if framing == "slip" else length_decode
    encode = slip_encode if framing == "slip" else (
        lambda packet: struct.pack(">i", len(packet)) + packet)
    proc = start_send(f"--{framing}", "--port", port(tcp), "--reply", "0.5", "/perform/ping",
                      "hi")
    conn, _ = tcp.accept()
    with conn:
        conn.settimeout(TIMEOUT)
        stream = conn.recv(65536)
        while not whole(stream, framing):
            stream += conn.recv(65536)
        assert OscMessage(decode(stream)[0]).params == ["hi"]
        conn.sendall(encode(osc("/perform/pong", "hi")))
    # Closing the connection ends the tool's wait early, as perform shutting down would.
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert '/perform/pong ,s "hi"' in out


def test_send_reply_without_an_answer_exits_1(udp: socket.socket) -> None:
    result = send("--port", port(udp), "--reply", "0.2", "/perform/ping")
    assert result.returncode == 1
    assert "no reply within 0.2 s" in result.stderr


@pytest.fixture
def refusing() -> Iterator[str]:
    """A TCP port that refuses connections: bound, so no one else takes it, but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield port(sock)


@pytest.mark.parametrize(("args", "reason"), [
    (["--host", "no.such.host.invalid", "/x"], "cannot resolve 'no.such.host.invalid'"),
    (["--tcp", "--port", "REFUSING", "/x"], "connection refused by 127.0.0.1:"),
    (["walk/speed", "0.3"], "an OSC address starts with '/'"),
    (["-t", "ii", "/x", "1"], "take 2 argument(s), got 1"),
    (["-t", "i", "/x", "0.5"], "'0.5' is not a valid 'i' argument"),
])
def test_send_errors_are_one_line_and_exit_1(args: list[str], reason: str, refusing: str) -> None:
    result = send(*[refusing if arg == "REFUSING" else arg for arg in args])
    assert result.returncode == 1
    assert result.stderr.startswith("osc_send: error: ")
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- osc_monitor -------------------------------------------------------------------------------

def test_monitor_prints_messages_flattens_bundles_survives_garbage(
        start_monitor: Callable[..., Monitor]) -> None:
    monitor = start_monitor("--quiet-phase")
    inner = OscBundleBuilder(time.time() + 2.0)
    inner.add_content(OscMessageBuilder("/perform/beat").build())
    outer = OscBundleBuilder(time.time() + 1.0)
    size = OscMessageBuilder("/walk/size")
    size.add_arg(1.5)
    outer.add_content(size.build())
    outer.add_content(inner.build())
    garbage = (b"garbage!", b"#bundle\0" + bytes(8) + struct.pack(">i", 64) + b"/x\0\0",
               b"/x\0\0,q\0\0")
    with SimpleUDPClient("127.0.0.1", monitor.port) as client, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        client.send_message("/walk/speed", 0.3)
        client.send_message("/perform/phase", 0.5)
        client.send(outer.build())
        for packet in garbage:
            raw.sendto(packet, ("127.0.0.1", monitor.port))
        client.send_message("/done", "ok")

    text = "\n".join(monitor.until('/done ,s "ok"'))
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} /walk/speed ,f 0\.3$", text, re.M)
    assert "/perform/phase" not in text
    # Flattened, each with its own bundle's timetag: the outer one 1 s ahead, the inner 2 s.
    ahead = dict(re.findall(r"(/walk/size ,f 1\.5|/perform/beat ,) \[bundle: at [\d:.]+, "
                            r"\+(\d\.\d{3}) s\]", text))
    assert 0.5 < float(ahead["/walk/size ,f 1.5"]) <= 1.0
    assert 1.5 < float(ahead["/perform/beat ,"]) <= 2.0
    assert text.count("malformed packet from 127.0.0.1:") == 3
    assert "runs past the end" in text and "unsupported type tag 'q'" in text
    returncode, err = monitor.stop()
    assert returncode == 0 and "Traceback" not in err


def test_monitor_filter_keeps_matching_addresses(start_monitor: Callable[..., Monitor]) -> None:
    monitor = start_monitor("--filter", "/walk/*")
    with SimpleUDPClient("127.0.0.1", monitor.port) as client:
        client.send_message("/other", 1)
        client.send_message("/walk/speed", 0.2)
        client.send_message("/walk/size", 3)
    text = "\n".join(monitor.until("/walk/size ,i 3"))
    assert "/walk/speed ,f 0.2" in text and "/other" not in text


def test_monitor_register_adds_and_removes_feedback(
        udp: socket.socket, start_monitor: Callable[..., Monitor]) -> None:
    monitor = start_monitor("--register", f"127.0.0.1:{port(udp)}")
    data, sender = udp.recvfrom(65536)
    assert (OscMessage(data).address, OscMessage(data).params) == (
        "/perform/feedback/add", [monitor.port])
    assert type_tags(data) == "i"
    assert sender[1] == monitor.port  # sent from the socket the feedback will arrive on
    udp.sendto(osc("/perform/ok", "/perform/feedback/add"), sender)
    monitor.until('/perform/ok ,s "/perform/feedback/add"')
    returncode, err = monitor.stop()
    assert returncode == 0 and "Traceback" not in err
    data = udp.recv(65536)
    assert (OscMessage(data).address, OscMessage(data).params) == (
        "/perform/feedback/remove", [monitor.port])


# --- the Max patch -----------------------------------------------------------------------------

def spacewalk_params() -> dict[str, tuple[float, float]]:
    """Each param("name", default, min, max, ...) of the default patch as {"/name": (min, max)}."""
    found = re.findall(r'param\(\s*"([^"]+)"\s*,\s*[^,]+,\s*([^,]+),\s*([^,)]+)',
                       SPACEWALK.read_text())
    assert found, "no param(...) declarations found in patches/spacewalk.py"
    return {"/" + name: (float(low), float(high)) for name, low, high in found}


@pytest.fixture
def maxpat() -> dict[str, dict]:
    """The patcher's boxes by id, each with its lines out as "targets": {outlet: [(id, inlet)]}."""
    patcher = json.loads(MAXPAT.read_text())["patcher"]
    boxes = {}
    for entry in patcher["boxes"]:
        box = entry["box"]
        assert box["id"] not in boxes, f"duplicate box id {box['id']}"
        boxes[box["id"]] = {**box, "targets": {}}
    for entry in patcher["lines"]:
        (source, outlet), (destination, inlet) = (entry["patchline"]["source"],
                                                  entry["patchline"]["destination"])
        boxes[source]["targets"].setdefault(outlet, []).append((destination, inlet))
    return boxes


def test_maxpat_boxes_and_lines_are_well_formed() -> None:
    patcher = json.loads(MAXPAT.read_text())["patcher"]
    boxes = {entry["box"]["id"]: entry["box"] for entry in patcher["boxes"]}
    assert len(boxes) == len(patcher["boxes"]) > 0
    for box in boxes.values():
        assert {"id", "maxclass", "numinlets", "numoutlets", "patching_rect"} <= box.keys()
        assert len(box["patching_rect"]) == 4
        if box["maxclass"] in ("newobj", "message", "comment"):
            assert box["text"].strip(), box["id"]
        if "outlettype" in box:
            assert len(box["outlettype"]) == box["numoutlets"], box["id"]
    assert patcher["lines"]
    for entry in patcher["lines"]:
        (source, outlet), (destination, inlet) = (entry["patchline"]["source"],
                                                  entry["patchline"]["destination"])
        assert source in boxes and destination in boxes
        assert 0 <= outlet < boxes[source]["numoutlets"], (source, outlet)
        assert 0 <= inlet < boxes[destination]["numinlets"], (destination, inlet)


def test_maxpat_speaks_perform_protocol(maxpat: dict[str, dict]) -> None:
    params = spacewalk_params()
    by_text = {box.get("text", ""): box for box in maxpat.values()}
    sender = by_text["udpsend 127.0.0.1 9000"]
    receiver = by_text["udpreceive 9001"]
    # Everything the patch sends is a param of the default patch or one of perform's commands.
    sent = [box["text"].split()[0] for box in maxpat.values()
            if box["maxclass"] == "message" and box["text"].startswith("/")]
    sent += [box["text"].split()[1] for box in maxpat.values()
             if box.get("text", "").startswith("prepend /")]
    assert set(sent) <= set(params) | PERFORM_IN, set(sent) - set(params) - PERFORM_IN
    assert set(params) <= set(sent), "every param of the default patch has a control"
    assert "/perform/ping" in sent
    # loadbang registers for feedback on the port udpreceive listens on.
    loadbang = by_text["loadbang"]
    [(register, _)] = loadbang["targets"][0]
    assert maxpat[register]["text"] == "/perform/feedback/add 9001"
    assert (sender["id"], 0) in maxpat[register]["targets"][0]
    # Each param: slider scaled to its range -> prepend /name -> udpsend; feedback routed back
    # into that slider with `set`, so it follows other controllers without sending again.
    route = next(box for box in maxpat.values() if box.get("text", "").startswith("route "))
    assert (route["id"], 0) in receiver["targets"][0]
    routed = route["text"].split()[1:]
    assert set(routed) <= set(params) | PERFORM_OUT
    for address, (low, high) in params.items():
        prepend = by_text[f"prepend {address}"]
        assert (sender["id"], 0) in prepend["targets"][0]
        sliders = [box for box in maxpat.values()
                   if (prepend["id"], 0) in box["targets"].get(0, [])]
        assert len(sliders) == 1 and sliders[0]["maxclass"] == "slider"
        slider = sliders[0]
        assert slider["floatoutput"] == 1
        assert (slider["min"], slider["min"] + slider["size"]) == (low, high)
        setters = [maxpat[target] for target, _ in route["targets"][routed.index(address)]
                   if maxpat[target].get("text") == "prepend set"]
        assert any((slider["id"], 0) in setter["targets"][0] for setter in setters), address

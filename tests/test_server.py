"""`perform run` as a user starts it: a real process, real UDP OSC, real HTTP."""

import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_for
from PIL import Image
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [sys.executable, "-m", "perform", "run", "--headless", "--osc-port", "0",
         "--http-port", "0", "--size", "64x48", "--fps", "30", "--no-zeroconf"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    banner = ""
    deadline = time.monotonic() + 60
    while "preview http" not in banner and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        banner += line
    found = re.search(r"OSC udp\+tcp://127\.0\.0\.1:(\d+) \| preview "
                      r"(http://127\.0\.0\.1:\d+)/", banner)
    assert found, f"no banner; the server said:\n{banner}"
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe flowing
    yield proc, int(found[1]), found[2]
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers, response.read()


def state(base):
    return json.loads(get(base + "/api/state")[2])


def post(base, body: bytes):
    request = urllib.request.Request(base + "/api/params", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def param(base, name):
    return state(base)["params"][name]["target"]


def test_state_describes_the_running_show(server):
    _, _, base = server
    s = wait_for(lambda: (st := state(base))["frames"]["frames"] > 5 and st, what="frames")
    assert s["patch"]["file"].endswith("patches/spacewalk.py") and s["patch"]["status"] == "ok"
    assert s["params"]["walk/speed"] | {"value": None, "target": None} == {
        "value": None, "target": None, "default": 0.05, "min": 0.0, "max": 1.0,
        "smooth": 0.5, "type": "float", "length": None, "doc": "loops per second",
        "control": ""}
    assert s["models"] == ["cppn:seed=7"] and s["size"] == [64, 48]
    ports = s["ports"]
    assert ports["osc_udp"] == ports["osc_tcp"] == server[1]
    assert base.endswith(f":{ports['http']}") and ports["oscquery"] not in (None, ports["http"])
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['oscquery']}/walk/speed?VALUE") as r:
        assert json.load(r) == {"VALUE": [s["params"]["walk/speed"]["target"]]}
    for key in ("fps", "frame_ms_p50", "frame_ms_p99", "dropped"):
        assert key in s["frames"]


def test_osc_from_another_process_sets_params(server):
    _, port, base = server
    client = SimpleUDPClient("127.0.0.1", port)
    client.send_message("/walk/speed", 0.25)
    wait_for(lambda: param(base, "walk/speed") == 0.25, what="float")
    client.send_message("/walk/speed", 7)  # int, clamped to the range
    wait_for(lambda: param(base, "walk/speed") == 1.0, what="clamped int")
    client.send_message("/walk/speed", "0.5")  # a number as text, as Max sends it
    wait_for(lambda: param(base, "walk/speed") == 0.5, what="string")
    client.send_message("/walk/speed", False)
    wait_for(lambda: param(base, "walk/speed") == 0.0, what="bool")

    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, value in (("/walk/speed", 0.125), ("/walk/size", 2.5)):
        message = OscMessageBuilder(address)
        message.add_arg(value)
        bundle.add_content(message.build())
    client.send(bundle.build())
    wait_for(lambda: (param(base, "walk/speed"), param(base, "walk/size")) == (0.125, 2.5),
             what="bundle")
    client.send_message("/walk/*", 0.75)  # wildcard: both params
    wait_for(lambda: (param(base, "walk/speed"), param(base, "walk/size")) == (0.75, 0.75),
             what="wildcard")


def test_bad_osc_is_counted_and_never_fatal(server):
    proc, port, base = server
    client = SimpleUDPClient("127.0.0.1", port)
    before = state(base)["osc"]
    client.send_message("/walk/speed", "fast")
    client.send_message("/walk/speed", [])
    client.send_message("/no/such/param", 1.0)
    client._sock.sendto(b"\x00\x01garbage", ("127.0.0.1", port))
    client._sock.sendto(b"#bundle\x00" + bytes(12), ("127.0.0.1", port))
    client.send_message("/walk/speed", 0.375)
    wait_for(lambda: param(base, "walk/speed") == 0.375, what="good message after garbage")
    after = state(base)["osc"]
    assert after["bad_args"] - before["bad_args"] == 2
    assert after["unknown_address"] - before["unknown_address"] == 1
    assert after["malformed"] - before["malformed"] >= 1
    assert proc.poll() is None


def test_http_params_are_clamped_and_errors_reported(server):
    _, _, base = server
    status, body = post(base, json.dumps({"walk/size": 99, "nope": 1}).encode())
    assert status == 207
    assert body["applied"] == {"walk/size": 4.0} and "nope" in body["errors"]
    assert post(base, b"{not json")[0] == 400
    assert post(base, b"[1, 2]")[0] == 400
    assert param(base, "walk/size") == 4.0


def test_preview_page_and_live_jpeg_stream(server):
    _, _, base = server
    status, headers, page = get(base + "/")
    assert status == 200 and b'src="/stream.mjpg"' in page
    with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        assert response.readline() == b"--perform-frame\r\n"
        headers = dict(line.decode().strip().split(": ", 1)
                       for line in iter(response.readline, b"\r\n"))
        assert headers["Content-Type"] == "image/jpeg"
        length = int(headers["Content-Length"])
        jpeg = Image.open(io.BytesIO(response.read(length)))
        assert jpeg.format == "JPEG" and jpeg.size == (64, 48)


def test_a_second_show_on_a_taken_port_says_so(server):
    _, port, _ = server
    done = subprocess.run([sys.executable, "-m", "perform", "run", "--headless", "--osc-port",
                           str(port), "--http-port", "0", "--no-zeroconf"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"OSC port udp/tcp 127.0.0.1:{port}: Address already in use" in done.stderr


def test_a_wrong_output_option_stops_the_start_with_what_the_output_takes():
    done = subprocess.run([sys.executable, "-m", "perform", "run", "--headless", "--output",
                           "record:pth=show.mp4", "--no-zeroconf", "--no-midi"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "--output record has no option 'pth'; it takes size, fit, fps, path" in done.stderr


def test_outputs_from_the_command_line_run_and_report_themselves(tmp_path):
    """Spout cannot run on Linux: it says so once and the show goes on, recording."""
    video = tmp_path / "show.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "perform", "run", "--osc-port", "0", "--http-port", "0",
         "--size", "64x48", "--fps", "30", "--no-zeroconf", "--no-midi", "--output", "spout",
         "--output", f"record:path={video},size=32x32"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        while "preview http" not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        base = re.search(r"preview (http://127\.0\.0\.1:\d+)/", said)[1]
        outputs = wait_for(lambda: [o for o in state(base)["outputs"] if o["sent"] >= 10
                                    or o["status"] == "unavailable"] == state(base)["outputs"]
                           and state(base)["outputs"])
        spout, record = outputs
        assert spout["status"] == "unavailable" and "needs Windows" in spout["last_error"]
        assert record["status"] == "running" and record["size"] == [32, 32]
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=20)[1]
        assert proc.returncode == 0
        assert (said + rest).count("needs Windows") == 1  # said once, not on every retry
        assert video.stat().st_size > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_cleanly(server):
    proc, _, _ = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0

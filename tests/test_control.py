"""A live show driven over OSC the way a VJ rig does: feedback out, server commands, presets."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from conftest import Listener, msg, wait_for
from pythonosc.osc_message import OscMessage

PATCH = """\
import numpy as np
from perform import param

speed = param("walk/speed", 0.1, 0.0, 1.0, smooth=0.2)
pad = param("pad", (0.5, 0.5), 0.0, 1.0)
autopilot = param("autopilot", 0, 0, 1_000_000)


def frame(ctx):
    autopilot.set(ctx.frame)  # a patch can move a param, as a controller would
    image = np.zeros((ctx.height, ctx.width, 3), np.float32)
    image[..., 0], image[..., 1] = pad[0], pad[1]
    image[..., 2] = speed
    return image
"""

OTHER = """\
import numpy as np
from perform import param

level = param("level", 0.25, 0.0, 1.0)


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), float(level), np.float32)
"""


@pytest.fixture
def rig(tmp_path, live_show):
    """A show on a patch in its own folder, a controller socket and a feedback listener."""
    patch = tmp_path / "show.py"
    patch.write_text(PATCH)
    (tmp_path / "other.py").write_text(OTHER)
    listener, controller = Listener(), Listener()

    def start(**config):
        live = live_show(patch, **config)
        live.send = lambda *packets: [controller.sock.sendto(p, ("127.0.0.1", live.osc_port))
                                      for p in packets]
        live.listener, live.controller, live.folder = listener, controller, tmp_path
        return live

    yield start
    listener.close()
    controller.close()


def answer(live, address: str) -> list[object]:
    """The server's answer to a command: /perform/ok or /perform/refused with its args."""
    def find():
        for _, reply, args in list(live.controller.messages):
            if reply in ("/perform/ok", "/perform/refused") and args[0] == address:
                live.controller.messages.clear()
                return [reply, *args[1:]]
        return None
    return wait_for(find, what=f"answer to {address}")


def test_feedback_sends_every_value_then_one_message_per_change_per_frame(rig):
    live = rig(fps=30.0)
    listener = live.listener
    live.send(msg("/perform/feedback/add", listener.port))
    assert answer(live, "/perform/feedback/add") == ["/perform/ok"]
    wait_for(lambda: listener.values("/pad"), what="the first dump")
    assert listener.values("/pad")[0] == [0.5, 0.5]  # a vector goes out as its numbers
    assert listener.values("/walk/speed")[0] == [pytest.approx(0.1)]

    frames_before = len(live.recorder.frames)
    sweep = np.linspace(0.0, 1.0, 1000)
    live.send(*(msg("/walk/speed", float(v)) for v in sweep))  # a 1 kHz-plus slider sweep
    wait_for(lambda: live.show.osc_stats.applied >= 1000, what="the sweep")
    wait_for(lambda: listener.values("/walk/speed")[-1] == [1.0], what="the final value")
    time.sleep(0.2)
    frames_during = len(live.recorder.frames) - frames_before
    echoed = len(listener.values("/walk/speed")) - 1
    assert 1 <= echoed <= frames_during + 1, (echoed, frames_during)

    # values moved by HTTP and by the patch itself are mirrored too
    request = urllib.request.Request(live.url + "/api/params", method="POST",
                                     data=json.dumps({"pad": [0.25, 0.75]}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()
    wait_for(lambda: listener.values("/pad")[-1] == [0.25, 0.75], what="HTTP change")
    wait_for(lambda: len(listener.values("/autopilot")) > 3, what="the patch's own changes")
    counts = [args[0] for args in listener.values("/autopilot")]
    assert counts == sorted(counts) and counts[-1] > counts[0]

    # the beat, frame stats and the patch's version go out as well
    wait_for(lambda: listener.values("/perform/fps"), what="fps")
    beats = [args[0] for args in listener.values("/perform/beat")]
    assert beats and beats == sorted(beats)
    phases = [args[0] for args in listener.values("/perform/phase")]
    assert all(0.0 <= p < 1.0 for p in phases)
    frames, dropped, p99 = listener.values("/perform/stats")[-1]
    assert frames > 0 and dropped >= 0 and p99 > 0

    live.send(msg("/perform/feedback/remove", listener.port))
    assert answer(live, "/perform/feedback/remove") == ["/perform/ok"]
    time.sleep(0.1)
    quiet_from = len(listener.messages)
    time.sleep(0.3)
    assert len(listener.messages) == quiet_from
    assert live.state()["osc"]["feedback"]["targets"] == []


def test_targets_given_at_start_get_feedback_and_errors(rig):
    listener = Listener()
    try:
        live = rig(osc_out=(("127.0.0.1", listener.port),))
        wait_for(lambda: listener.values("/perform/phase"), what="feedback from the start")
        (live.folder / "show.py").write_text(PATCH + "\nsyntax error here\n")
        error = wait_for(lambda: listener.values("/perform/error"), what="the error")[0]
        assert error[0].endswith("show.py") and error[1] == PATCH.count("\n") + 2
        assert "invalid syntax" in error[2]
    finally:
        listener.close()


def test_presets_save_and_load_every_value_at_once(rig):
    live = rig()
    live.send(msg("/walk/speed", 0.75), msg("/pad", 0.125, 0.875))
    live.send(msg("/perform/preset/save", "verse 1"))
    assert answer(live, "/perform/preset/save") == ["/perform/ok"]
    saved = json.loads((live.folder / "presets" / "verse 1.json").read_text())["params"]
    assert saved["walk/speed"] == 0.75 and saved["pad"] == [0.125, 0.875]
    assert [p.name for p in (live.folder / "presets").iterdir()] == ["verse 1.json"]  # no temp

    live.send(msg("/walk/speed", 0.0), msg("/pad", 1.0, 1.0))
    wait_for(lambda: live.show.store.targets()["pad"] == (1.0, 1.0), what="new values")
    live.send(msg("/perform/preset/load", "verse 1"))
    assert answer(live, "/perform/preset/load") == ["/perform/ok"]
    assert live.show.store.targets()["walk/speed"] == 0.75
    assert live.show.store.targets()["pad"] == (0.125, 0.875)

    for bad in ("../escape", "a/b", "", "nope"):
        live.send(msg("/perform/preset/load", bad))
        reply, reason = answer(live, "/perform/preset/load")
        assert reply == "/perform/refused" and reason
    live.send(msg("/perform/preset/save"))
    assert answer(live, "/perform/preset/save")[0] == "/perform/refused"


def test_patch_load_reload_and_fps_from_osc(rig):
    live = rig()
    frames = live.recorder.frames
    wait_for(lambda: frames and frames[-1].patch_version == 1, what="version 1")
    live.send(msg("/perform/patch/load", "other.py"))
    assert answer(live, "/perform/patch/load") == ["/perform/ok"]
    wait_for(lambda: frames[-1].patch_version == 2, what="the other patch")
    assert frames[-1].image.max() == 64 and live.state()["patch"]["file"].endswith("other.py")
    assert "level" in live.state()["params"]

    for outside in ("../show.py", "/etc/passwd", "missing.py", str(Path(__file__))):
        live.send(msg("/perform/patch/load", outside))
        reply, reason = answer(live, "/perform/patch/load")
        assert reply == "/perform/refused" and ("outside" in reason or "no patch" in reason)

    live.send(msg("/perform/reload"))
    assert answer(live, "/perform/reload") == ["/perform/ok"]
    wait_for(lambda: frames[-1].patch_version == 3, what="the reload")

    live.send(msg("/perform/fps", 12.0))
    assert answer(live, "/perform/fps") == ["/perform/ok"]
    assert live.state()["frames"]["target_fps"] == 12.0
    for bad in (0.0, float("nan"), "fast"):
        live.send(msg("/perform/fps", bad))
        assert answer(live, "/perform/fps")[0] == "/perform/refused"
    assert live.show.engine.fps == 12.0


def test_file_writing_commands_need_the_token_when_one_is_set(rig):
    live = rig(token="s3cret")
    live.send(msg("/perform/preset/save", "a"))
    reply, reason = answer(live, "/perform/preset/save")
    assert reply == "/perform/refused" and "token" in reason
    live.send(msg("/perform/patch/load", "other.py", "wrong"))
    assert answer(live, "/perform/patch/load")[0] == "/perform/refused"
    assert not (live.folder / "presets").exists()
    live.send(msg("/perform/preset/save", "a", "s3cret"))
    assert answer(live, "/perform/preset/save") == ["/perform/ok"]
    assert (live.folder / "presets" / "a.json").exists()
    live.send(msg("/perform/preset/load", "a"))  # reads only: no token needed
    assert answer(live, "/perform/preset/load") == ["/perform/ok"]


def test_oscquery_listeners_of_a_live_show_hear_every_source(rig):
    live = rig()
    port = live.state()["ports"]["oscquery"]

    async def session():
        async with aiohttp.ClientSession() as client, \
                client.ws_connect(f"http://127.0.0.1:{port}/") as ws:
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/pad"})
            await asyncio.sleep(0.1)
            live.send(msg("/pad", 0.25, 0.75))  # from UDP...
            first = OscMessage((await ws.receive(timeout=5)).data)
            await ws.send_bytes(msg("/pad", 0.5, 0.125))  # ...and from the WebSocket itself
            second = OscMessage((await ws.receive(timeout=5)).data)
            await ws.send_bytes(msg("/perform/ping", 3))
            pong = OscMessage((await ws.receive(timeout=5)).data)
            return first, second, pong

    first, second, pong = asyncio.run(session())
    assert (first.address, first.params) == ("/pad", [0.25, 0.75])
    assert (second.address, second.params) == ("/pad", [0.5, 0.125])
    assert (pong.address, pong.params) == ("/perform/pong", [3])


def test_a_still_is_saved_from_osc_and_http_with_the_token_where_one_is_set(rig):
    """The frame on screen as a PNG in the patch folder's stills/, from OSC and from the
    preview page's button (its HTTP call); both write files, so both need the token."""
    from PIL import Image

    live = rig(token="s3cret")
    live.send(msg("/pad", 1.0, 0.0))
    wait_for(lambda: live.recorder.frames and live.recorder.frames[-1].image[0, 0, 0] == 255)
    live.send(msg("/perform/still"))
    assert answer(live, "/perform/still")[:1] == ["/perform/refused"]
    live.send(msg("/perform/still", "s3cret"))
    saved = wait_for(lambda: live.controller.values("/perform/still/saved"), what="a still")
    path = Path(saved[0][0])
    assert path.parent == live.folder / "stills" and path.suffix == ".png"
    still = np.asarray(Image.open(path))
    assert still.shape == (48, 64, 3) and tuple(still[0, 0]) == (255, 0, 26)  # speed 0.1

    request = urllib.request.Request(live.url + "/api/still", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    request.add_header("Authorization", "Bearer s3cret")
    with urllib.request.urlopen(request, timeout=5) as response:
        other = Path(json.load(response)["path"])
    assert other.exists() and other != path
    assert sorted(p.name for p in (live.folder / "stills").iterdir()) == sorted(
        [path.name, other.name])  # nothing half-written left beside them

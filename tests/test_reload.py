"""Hot reload against a running show: real file writes, real watcher, real sockets."""

import os
import socket
import textwrap
import time

from conftest import wait_for
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

GOOD = """\
from perform import models, param, walks

speed = param("walk/speed", 0.1, 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    ctx.state["model"] = id(model)
    return model(walks.noise_loop(ctx.t * speed, dim=model.z_dim)){tint}
"""


def write(path, text, atomic=False):
    if atomic:  # what editors with "safe write" do
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


def test_edits_apply_live_and_broken_edits_never_stop_the_show(tmp_path, live_show):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    patch = tmp_path / "show.py"
    write(patch, GOOD.format(tint=""))
    # 10 fps: a missed frame slot then means a stall of 100 ms, which a reload must never cause
    live = live_show(patch, fps=10.0, osc_out=(listener.getsockname(),))
    show, frames = live.show, live.recorder.frames
    wait_for(lambda: len(frames) > 5, what="first frames")
    assert live.state()["patch"] | {"file": None} == {
        "file": None, "version": 1, "status": "ok", "error": None}

    SimpleUDPClient("127.0.0.1", live.osc_port).send_message("/walk/speed", 0.5)
    wait_for(lambda: live.state()["params"]["walk/speed"]["value"] == 0.5, what="OSC value")
    count_before = show.engine.state["n"]
    model_before = show.engine.state["model"]

    # 1. a good edit: picked up on the next frames, values and models survive it
    write(patch, GOOD.format(tint=" // 2"), atomic=True)
    wait_for(lambda: frames[-1].patch_version == 2, what="version 2")
    assert live.state()["params"]["walk/speed"]["value"] == 0.5
    assert show.engine.state["n"] > count_before
    assert show.engine.state["model"] == model_before
    assert frames[-1].image.max() <= 128  # the new code draws

    # 2. a syntax error: reported with its line, version 2 keeps drawing
    write(patch, GOOD.format(tint="") + "\ndef broken(:\n    pass\n")
    error = wait_for(lambda: live.state()["patch"]["error"], what="syntax error")
    assert error["kind"] == "load" and error["line"] == 12 and "SyntaxError" in error["message"]
    assert live.state()["patch"]["status"] == "fallback"
    seen = len(frames)
    wait_for(lambda: len(frames) > seen + 5, what="frames after the syntax error")
    assert {f.patch_version for f in frames[seen:]} == {2}
    address, *args = _osc(listener)
    assert address == "/perform/error" and args[0] == str(patch.resolve()) and args[1] == 12

    # 3. an error inside frame(): the last good version draws that very frame
    write(patch, GOOD.format(tint=" if ctx.t < 0 else 1 / 0"), atomic=True)
    error = wait_for(lambda: (live.state()["patch"]["error"] or {}).get("kind") == "frame"
                     and live.state()["patch"]["error"], what="runtime error")
    assert error["line"] == 10 and "ZeroDivisionError" in error["message"]
    assert _osc(listener)[2:4] == [10, error["message"]]
    seen = len(frames)
    wait_for(lambda: len(frames) > seen + 5, what="frames after the runtime error")
    assert {f.patch_version for f in frames[seen:]} == {2}

    # 4. the next good save recovers
    write(patch, GOOD.format(tint=" // 4"))
    wait_for(lambda: frames[-1].patch_version == 5, what="version 5")
    state = live.state()
    assert state["patch"]["status"] == "ok" and state["patch"]["error"] is None
    assert frames[-1].image.max() <= 64

    # no frame was lost, held or late through all of it
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert show.stats.held == 0
    assert show.stats.dropped == 0
    listener.close()


def test_a_patch_broken_at_start_shows_black_and_recovers_on_save(tmp_path, live_show):
    patch = tmp_path / "first.py"
    patch.write_text("from perform import models\nmodel = models.load('cppn:seed=x')\n")
    live = live_show(patch)
    error = wait_for(lambda: live.state()["patch"]["error"], what="load error")
    assert error["line"] == 2 and "key=integer" in error["message"]
    assert live.state()["patch"]["status"] == "no patch"
    wait_for(lambda: len(live.recorder.frames) > 3, what="black frames")
    assert live.recorder.frames[-1].image.max() == 0
    patch.write_text(GOOD.format(tint=""))
    wait_for(lambda: live.recorder.frames[-1].patch_version == 2, what="recovery")
    assert live.state()["patch"]["status"] == "ok"


def test_a_patch_without_frame_function_is_refused_with_a_hint(tmp_path, live_show):
    patch = tmp_path / "empty.py"
    patch.write_text(textwrap.dedent("x = 1\n"))
    live = live_show(patch)
    error = wait_for(lambda: live.state()["patch"]["error"], what="load error")
    assert "def frame(ctx)" in error["message"]


def _osc(sock, address="/perform/error"):
    """The next feedback message sent to `address` (the beat, values and stats go by too)."""
    while True:
        message = OscMessage(sock.recvfrom(65536)[0])
        if message.address == address:
            return [message.address, *message.params]


def test_a_slow_load_does_not_hold_up_the_next_save(tmp_path, live_show):
    patch = tmp_path / "slow.py"
    patch.write_text(GOOD.format(tint=""))
    live = live_show(patch)
    frames = live.recorder.frames
    wait_for(lambda: frames and frames[-1].patch_version == 1, what="version 1")
    patch.write_text("import time\ntime.sleep(2)\n" + GOOD.format(tint=" // 3"))
    wait_for(lambda: live.show.attempts == 2, what="the slow load to start")
    patch.write_text(GOOD.format(tint=" // 2"))
    wait_for(lambda: frames[-1].patch_version == 3, timeout=1.5, what="the newer save first")
    time.sleep(2.0)  # the slow load finishes and must not replace the newer version
    assert frames[-1].patch_version == 3 and frames[-1].image.max() <= 128


def test_stopping_works_even_while_a_frame_is_stuck(tmp_path, live_show):
    patch = tmp_path / "stuck.py"
    patch.write_text(GOOD.format(tint="") + "\n\nimport time\n_frame = frame\n\n\n"
                     "def frame(ctx):\n    if ctx.frame == 5:\n        time.sleep(5)\n"
                     "    return _frame(ctx)\n")
    live = live_show(patch)
    wait_for(lambda: len(live.recorder.frames) == 5, what="the stuck frame")
    started = time.monotonic()
    live.show.stop.set()
    live.thread.join(timeout=10)
    assert not live.thread.is_alive() and time.monotonic() - started < 3.5

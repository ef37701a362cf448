"""Scenes: saved, recalled at once or crossfaded frame by frame, autosaved, resumed, refused."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from conftest import Listener, engine_by_hand, msg, wait_for

import perform.show_scenes
from perform import walks
from perform.core.crossfade import Crossfade, smoothstep
from perform.core.scenes import Scene, SceneError, Shelf

PATCH = """\
import numpy as np
from perform import param

level = param("level", 0.0, 0.0, 1.0)
count = param("count", 0, 0, 100)
flag = param("flag", False)
pad = param("pad", (0.0, 0.0), 0.0, 1.0)
mood = param("mood", "calm")


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), float(level), np.float32)
"""

OTHER = """\
import numpy as np
from perform import param

glow = param("glow", 0.25, 0.0, 1.0)


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), float(glow), np.float32)
"""

SCENE = {"level": 1.0, "count": 10, "flag": True, "pad": (1.0, 0.5), "mood": "wild"}

WALKER = """\
import numpy as np
from perform import param, trigger, walks

speed = param("speed", 0.0, 0.0, 10.0)
flash = trigger("flash")


def frame(ctx):
    ctx.phase(speed, "walk")
    ctx.state.setdefault("z", walks.seed_latent(1, 8))
    ctx.state["hook"] = print  # not something a file can keep
    return np.zeros((ctx.height, ctx.width, 3), np.float32)
"""


# -- the crossfade, frame by frame, on an engine driven by hand ------------------------------

def fading_engine(tmp_path, patch: str = PATCH):
    return engine_by_hand(tmp_path, patch)


@pytest.mark.parametrize("length, unit", [(2.0, "s"), (4.0, "beats")])  # 120 BPM: 4 beats is 2 s
def test_a_crossfade_moves_numbers_along_a_smoothstep_and_switches_the_rest_at_the_end(
        tmp_path, length, unit):
    engine, store, fader = fading_engine(tmp_path)
    fader.start(Crossfade("chorus", store.coerce_many(SCENE)[0], length, unit))
    seen = {t: engine.render_one(t).params for t in (1.0, 1.5, 2.0, 2.9, 3.0)}
    assert seen[1.0]["level"] == 0.0 and seen[1.0]["count"] == 0  # starts where it was
    quarter = smoothstep(0.25)
    assert quarter == pytest.approx(0.15625)
    assert seen[1.5]["level"] == pytest.approx(quarter)
    assert seen[1.5]["pad"] == pytest.approx((quarter, quarter / 2))
    assert seen[1.5]["count"] == round(10 * quarter) == 2  # an int is rounded
    assert seen[2.0]["level"] == pytest.approx(0.5) and seen[2.0]["count"] == 5
    assert not seen[2.9]["flag"] and seen[2.9]["mood"] == "calm"  # bools and text wait...
    assert seen[3.0]["flag"] and seen[3.0]["mood"] == "wild"  # ...for the end
    assert seen[3.0]["level"] == 1.0 and seen[3.0]["pad"] == (1.0, 0.5)
    assert fader.running() is None


def test_a_fader_moved_mid_fade_stays_where_the_performer_put_it(tmp_path):
    engine, store, fader = fading_engine(tmp_path)
    fader.start(Crossfade("chorus", store.coerce_many(SCENE)[0], 2.0))
    engine.render_one(1.0)
    engine.render_one(2.0)
    assert fader.running() == {"name": "chorus", "progress": 0.5}
    store.set("level", 0.3)  # the performer grabs the fader
    assert engine.render_one(2.5).params["level"] == 0.3
    final = engine.render_one(3.0).params
    assert final["level"] == 0.3 and final["count"] == 10  # the rest finished the fade


def test_a_new_crossfade_starts_from_where_the_running_one_got_to(tmp_path):
    engine, store, fader = fading_engine(tmp_path)
    fader.start(Crossfade("up", store.coerce_many({"level": 1.0})[0], 2.0))
    engine.render_one(1.0)
    halfway = engine.render_one(2.0).params["level"]
    fader.start(Crossfade("down", store.coerce_many({"level": 0.0})[0], 1.0))
    assert engine.render_one(2.1).params["level"] == halfway == pytest.approx(0.5)
    assert engine.render_one(2.6).params["level"] == pytest.approx(0.25)
    assert engine.render_one(3.1).params["level"] == 0.0


def test_a_crossfade_moves_walk_positions_and_slerps_latents_the_patch_keeps(tmp_path):
    engine, _, fader = fading_engine(tmp_path, WALKER)
    here = np.stack([walks.seed_latent(1, 8), walks.seed_latent(2, 8)])  # a W+ of two rows
    there = np.stack([walks.seed_latent(3, 8), walks.seed_latent(4, 8)])
    engine.state.update(walk=0.5, z=here, mood="calm")
    fader.start(Crossfade("b", {}, 2.0, state={"walk": 4.5, "z": there, "mood": "wild"}))
    engine.render_one(1.0)  # the fade's first frame
    engine.render_one(2.0)
    assert engine.state["walk"] == pytest.approx(0.5 + 4.0 * smoothstep(0.5))
    for row in range(2):
        assert np.allclose(engine.state["z"][row], walks.slerp(here[row], there[row], 0.5))
    assert engine.state["mood"] == "calm"  # what cannot blend switches at the end
    engine.render_one(3.0)
    assert engine.state["walk"] == 4.5 and np.allclose(engine.state["z"], there)
    assert engine.state["mood"] == "wild" and fader.running() is None


def test_a_scene_file_keeps_what_json_can_hold_of_the_state(tmp_path):
    shelf = Shelf(tmp_path, "scene")
    latent = walks.seed_latent(5, 8)
    state = {"walk": 2.5, "z": latent, "hits": [1, 2], "hook": print, "t": torch.zeros(2),
             "lost": np.array([np.nan, 1.0])}
    shelf.save("a", Scene({"level": 0.5}, "show.py", None, state, ("hill.pkl",)))
    scene = shelf.read("a")
    assert set(scene.state) == {"walk", "z", "hits"} and scene.models == ("hill.pkl",)
    assert scene.state["walk"] == 2.5 and scene.state["hits"] == [1, 2]
    assert scene.state["z"].dtype == np.float32 and np.array_equal(scene.state["z"], latent)
    (tmp_path / "old.json").write_text('{"patch": null, "params": {"level": 1.0}}')
    assert shelf.read("old").state == {}  # files from before scenes kept state still load
    (tmp_path / "bad.json").write_text('{"params": {}, "state": {"z": {"array": [[1], 2]}}}')
    with pytest.raises(SceneError, match=r"bad\.json.*'state' holds a bad array"):
        shelf.read("bad")


# -- a live show over OSC and HTTP --------------------------------------------------------------

@pytest.fixture
def rig(tmp_path, live_show):
    (tmp_path / "show.py").write_text(PATCH)
    (tmp_path / "other.py").write_text(OTHER)
    controller = Listener()

    def start(**config):
        live = live_show(tmp_path / "show.py", **config)
        live.send = lambda *packets: [controller.sock.sendto(p, ("127.0.0.1", live.osc_port))
                                      for p in packets]
        live.controller, live.folder = controller, tmp_path
        return live

    yield start
    controller.close()


def answer(live, address: str) -> list[object]:
    """The server's reply to `address`: ok, refused or the command's own answer."""
    def find():
        for _, reply, args in list(live.controller.messages):
            if reply == address or (reply in ("/perform/ok", "/perform/refused")
                                    and args[0] == address):
                live.controller.messages.clear()
                return [reply, *(args if reply == address else args[1:])]
        return None
    return wait_for(find, what=f"answer to {address}")


def post(live, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(live.url + path, method="POST", headers=headers,
                                     data=json.dumps(body or {}).encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_scene_saved_over_osc_comes_back_at_once_and_lists(rig):
    live = rig()
    store = live.show.store
    live.send(msg("/level", 0.75), msg("/pad", 0.25, 0.5), msg("/mood", "wild"))
    live.send(msg("/perform/scene/save", "verse 1"))
    assert answer(live, "/perform/scene/save") == ["/perform/ok"]
    saved = json.loads((live.folder / "scenes" / "verse 1.json").read_text())
    assert saved["patch"] == "show.py" and saved["params"]["pad"] == [0.25, 0.5]
    assert saved["saved"][:2] == "20"  # an ISO time

    live.send(msg("/level", 0.0), msg("/mood", "calm"))
    wait_for(lambda: store.targets()["mood"] == "calm", what="new values")
    live.send(msg("/perform/scene/recall", "verse 1"))
    assert answer(live, "/perform/scene/recall") == ["/perform/ok"]
    assert store.targets()["level"] == 0.75 and store.targets()["mood"] == "wild"

    live.send(msg("/perform/scene/list"))
    assert answer(live, "/perform/scene/list") == ["/perform/scene/list", "verse 1"]
    with urllib.request.urlopen(live.url + "/api/scenes", timeout=5) as response:
        assert json.load(response) == {"scenes": ["verse 1"]}
    for bad in ("nope", "../x"):
        live.send(msg("/perform/scene/recall", bad))
        assert answer(live, "/perform/scene/recall")[0] == "/perform/refused"


def test_a_crossfade_over_http_reports_its_progress_then_lands(rig):
    live = rig()
    assert post(live, "/api/scenes/quiet")[0] == 200
    live.show.store.set("level", 1.0)
    status, body = post(live, "/api/scenes/quiet/recall", {"seconds": 0.6})
    assert (status, body) == (200, {"recalled": "quiet", "skipped": {}})
    fade = wait_for(lambda: live.state()["scene"], what="the fade under way")
    assert fade["name"] == "quiet" and 0.0 <= fade["progress"] <= 1.0
    wait_for(lambda: live.state()["scene"] is None, what="the fade's end")
    assert live.show.store.targets()["level"] == 0.0
    assert post(live, "/api/scenes/quiet/recall", {"beats": -1})[0] == 409
    assert post(live, "/api/scenes/quiet/recall", {"bars": 2})[0] == 400
    assert post(live, "/api/scenes/missing/recall")[0] == 404


def test_recalling_a_scene_of_another_patch_switches_to_it_then_sets_its_params(rig):
    live = rig()
    live.send(msg("/perform/patch/load", "other.py"))
    wait_for(lambda: "glow" in live.show.store.names(), what="the other patch")
    live.show.store.set("glow", 0.875)
    assert post(live, "/api/scenes/other")[0] == 200
    live.send(msg("/perform/patch/load", "show.py"))
    wait_for(lambda: "level" in live.show.store.names(), what="the first patch again")
    live.send(msg("/perform/scene/recall/beats", "other", 2.0))
    assert answer(live, "/perform/scene/recall/beats") == ["/perform/ok"]
    wait_for(lambda: live.show.store.target("glow") == 0.875, what="the scene's glow")
    assert live.state()["patch"]["file"].endswith("other.py")


def test_a_truncated_scene_is_skipped_in_the_list_and_refused_but_the_show_plays_on(
        rig, caplog):
    live = rig()
    assert post(live, "/api/scenes/good")[0] == 200
    (live.folder / "scenes" / "cut.json").write_text('{"params": {"level": 0.')
    with caplog.at_level(logging.WARNING, "perform.scenes"):
        live.send(msg("/perform/scene/list"))
        assert answer(live, "/perform/scene/list") == ["/perform/scene/list", "good"]
    assert "cut.json" in caplog.text
    live.send(msg("/perform/scene/recall", "cut", 1.0))
    reply, reason = answer(live, "/perform/scene/recall")
    assert reply == "/perform/refused" and "unreadable" in reason and "cut.json" in reason
    frames = len(live.recorder.frames)
    wait_for(lambda: len(live.recorder.frames) > frames + 3, what="frames after the refusal")


def test_autosave_follows_changes_and_resume_starts_a_new_show_from_it(rig, monkeypatch):
    monkeypatch.setattr(perform.show_scenes, "AUTOSAVE_SECONDS", 0.2)
    live = rig()
    autosave = live.folder / "scenes" / "autosave.json"
    live.send(msg("/perform/patch/load", "other.py"))
    wait_for(lambda: "glow" in live.show.store.names(), what="the other patch")
    live.show.store.set("glow", 0.625)
    wait_for(lambda: autosave.exists() and json.loads(autosave.read_text())["params"]
             == {"glow": 0.625}, what="the autosave")
    assert live.state()["autosave"]["last"] is not None
    live.show.stop.set()

    resumed = rig(resume=True)  # started on show.py: the autosave brings other.py back
    wait_for(lambda: resumed.show.store.target("glow") == 0.625, what="the resumed value")
    assert resumed.state()["patch"]["file"].endswith("other.py")


def test_an_autosave_that_cannot_write_is_reported_and_the_show_plays_on(rig, monkeypatch):
    monkeypatch.setattr(perform.show_scenes, "AUTOSAVE_SECONDS", 0.1)
    live = rig()
    (live.folder / "scenes").write_text("a file where the folder should be")
    error = wait_for(lambda: live.state()["autosave"]["error"], what="the autosave's error")
    assert "cannot save scene 'autosave'" in error
    frames = len(live.recorder.frames)
    wait_for(lambda: len(live.recorder.frames) > frames + 3, what="frames after the error")


def test_a_scene_brings_back_where_the_walk_was_and_the_show_autosaves_as_it_stops(
        rig, monkeypatch):
    monkeypatch.setattr(perform.show_scenes, "AUTOSAVE_SECONDS", 60.0)  # only the last one
    live = rig()
    (live.folder / "show.py").write_text(WALKER)
    store, state = live.show.store, live.show.engine.state
    wait_for(lambda: "speed" in store.names(), what="the walker patch")
    store.set("speed", 5.0)
    store.set("flash", 1)
    wait_for(lambda: state.get("walk", 0) > 1.0, what="the walk moving")
    store.set("speed", 0.0)
    time.sleep(0.2)
    here = state["walk"]
    live.send(msg("/perform/scene/save", "a"))
    assert answer(live, "/perform/scene/save")[0] == "/perform/ok"
    saved = json.loads((live.folder / "scenes" / "a.json").read_text())
    assert saved["state"]["walk"] == pytest.approx(here) and "array" in saved["state"]["z"]
    assert "flash" not in saved["params"] and "hook" not in saved["state"]
    assert saved["models"] == []  # this patch loads none
    store.set("speed", 5.0)
    wait_for(lambda: state["walk"] > here + 1.0, what="the walk moving on")
    live.send(msg("/perform/scene/recall", "a"))
    wait_for(lambda: state["walk"] == pytest.approx(here), what="the walk back where it was")
    store.set("speed", 1.25)
    live.show.stop.set()
    live.thread.join(10)
    autosave = json.loads((live.folder / "scenes" / "autosave.json").read_text())
    assert autosave["params"]["speed"] == 1.25  # set a moment before the show stopped
    assert autosave["state"]["walk"] >= here


def test_saving_and_recalling_scenes_need_the_token_beyond_loopback(rig):
    live = rig(token="s3cret")
    assert post(live, "/api/scenes/a")[0] == 401
    assert post(live, "/api/scenes/a", token="s3cret")[0] == 200
    assert post(live, "/api/scenes/a/recall")[0] == 401
    assert post(live, "/api/scenes/a/recall", {"seconds": 0}, token="s3cret")[0] == 200
    live.send(msg("/perform/scene/save", "b"))
    assert answer(live, "/perform/scene/save")[0] == "/perform/refused"
    live.send(msg("/perform/scene/recall", "a", 1.0))
    assert answer(live, "/perform/scene/recall")[0] == "/perform/refused"
    live.send(msg("/perform/scene/recall", "a", 1.0, "s3cret"))
    assert answer(live, "/perform/scene/recall") == ["/perform/ok"]
    live.send(msg("/perform/scene/save", "b", "s3cret"))
    assert answer(live, "/perform/scene/save") == ["/perform/ok"]

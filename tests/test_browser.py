"""The preview page in a real headless Chromium, driven over the DevTools protocol."""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from conftest import msg, wait_for

from perform.outputs.base import OutputSpec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")

PATCH = """\
from perform import models, param, walks

speed = param("walk/speed", 0.25, 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    return model(walks.noise_loop(ctx.t * speed, dim=model.z_dim)){extra}
"""


class Page:
    """Just enough of the DevTools protocol: evaluate JavaScript in one tab."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        async for message in self.ws:
            reply = json.loads(message.data)
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]
        raise ConnectionError("DevTools closed")

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, timeout: float = 10.0):
        for _ in range(int(timeout / 0.05)):
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"page never satisfied {expression}")


async def open_page(url: str, profile: str):
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group: the helpers die with it
    for line in browser.stderr:
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            break
    else:
        raise RuntimeError("chromium did not start")
    threading.Thread(target=browser.stderr.read, daemon=True).start()  # keep the pipe flowing
    port = found[1].split(":")[2].split("/")[0]
    session = aiohttp.ClientSession()
    async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
        tab = next(t for t in await response.json() if t["type"] == "page")
    page = Page(await session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0))
    await page.call("Page.navigate", url=url)
    return browser, session, page


async def test_preview_page_shows_frames_params_and_errors(tmp_path, live_show):
    patch = tmp_path / "show.py"
    patch.write_text(PATCH.format(extra=""))
    live = live_show(patch, outputs=(OutputSpec.parse(f"record:path={tmp_path / 'a.mp4'}"),))
    browser, session, page = await open_page(live.url + "/", str(tmp_path / "profile"))
    try:
        # live frames decode in the browser at the show's size
        assert await page.until("document.getElementById('view').naturalWidth") == 64
        assert await page.js("document.getElementById('view').naturalHeight") == 48
        # the param is listed with its value, and its slider plays it
        label = await page.until("document.querySelector('#params label')?.textContent")
        assert label == "/walk/speed = 0.25"
        await page.js("""(() => { const s = document.querySelector('#params input');
                                  s.value = 0.75; s.dispatchEvent(new Event('input')); })()""")
        await asyncio.to_thread(
            wait_for, lambda: live.state()["params"]["walk/speed"]["value"] == 0.75)
        # a broken save shows its line on the page; the next good save clears it
        patch.write_text(PATCH.format(extra=" + undefined_name"))
        error = await page.until("document.querySelector('#error.shown')?.textContent")
        assert f"{patch.resolve()}:8" in error and "NameError" in error
        patch.write_text(PATCH.format(extra=""))
        await page.until("document.getElementById('error').className === ''")
        # every output is listed with its state; the Still button saves the frame on screen
        listed = await page.until("document.getElementById('outputs').textContent")
        assert listed.startswith(f"record:path={tmp_path / 'a.mp4'}: running · ")
        await page.js("document.getElementById('still').click()")
        saved = await page.until("document.getElementById('saved').textContent")
        assert saved.startswith(f"saved {tmp_path / 'stills'}/still-")
        assert Path(saved.removeprefix("saved ")).is_file()
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()


async def test_beyond_loopback_every_change_needs_the_token_the_link_gives(tmp_path, live_show):
    """A show that wants a token refuses changes without it (HTTP 401), and the page opened
    from the link printed at start carries it: its sliders play, and the token leaves the
    address bar."""
    patch = tmp_path / "show.py"
    patch.write_text(PATCH.format(extra=""))
    live = live_show(patch, token="s3cret")
    unsigned = urllib.request.Request(live.url + "/api/params", data=b'{"walk/speed": 0.5}',
                                      method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, unsigned, timeout=5)
    assert refused.value.code == 401
    assert live.state()["params"]["walk/speed"]["value"] == 0.25
    browser, session, page = await open_page(live.url + "/?token=s3cret",
                                             str(tmp_path / "profile"))
    try:
        await page.until("!!document.querySelector('#params input')")
        assert await page.js("location.search") == ""
        # the page's WebSocket carries the token on its URL; one without it is refused
        assert await page.until("socket.readyState === WebSocket.OPEN")
        with pytest.raises(aiohttp.WSServerHandshakeError) as unsigned_ws:
            await session.ws_connect(live.url.replace("http", "ws") + "/api/live")
        assert unsigned_ws.value.status == 401
        await page.js("""(() => { const s = document.querySelector('#params input');
                                  s.value = 0.75; s.dispatchEvent(new Event('input')); })()""")
        await asyncio.to_thread(
            wait_for, lambda: live.state()["params"]["walk/speed"]["value"] == 0.75)
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()


CONTROLS = """\
from perform import models, param, walks

speed = param("walk/speed", 0.25, 0.0, 1.0)
size = param("walk/size", 0.5, 0.0, 1.0)
glow = param("glow", False)
pad = param("pad", (0.5, 0.5), 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    return model(walks.noise_loop(speed, dim=model.z_dim))
"""


def frame_with(live, name: str, value) -> object:
    """The first recorded frame drawn with `name` at `value`."""
    return next((f for f in live.recorder.frames if f.params.get(name) == value), None)


async def test_control_page_builds_grouped_controls_that_play_and_follow(tmp_path, live_show):
    """One control per param, grouped by prefix; a slider plays its param (and the frame
    changes); an OSC message moves the slider; the XY pad plays a 2-vector."""
    patch = tmp_path / "show.py"
    patch.write_text(CONTROLS)
    live = live_show(patch)
    browser, session, page = await open_page(live.url + "/", str(tmp_path / "profile"))
    try:
        await page.until("document.querySelectorAll('#params label').length === 4")
        assert await page.js("document.querySelector('#group-walk h3').textContent") == "walk"
        assert await page.js("[...document.querySelectorAll('#group-walk label')]"
                             ".map((l) => l.textContent)") == ["/walk/speed = 0.25",
                                                              "/walk/size = 0.5"]
        assert await page.js("document.querySelectorAll('#group-walk input[type=range]')"
                             ".length") == 2
        assert await page.js("!!document.querySelector('#group-_ input[type=checkbox]')")
        assert await page.js("!!document.querySelector('#group-_ .pad')")
        assert await page.until("socket.readyState === WebSocket.OPEN")
        # a slider plays its param over the WebSocket, and the frame drawn with it changes
        await page.js("""(() => { const s = document.querySelector('#group-walk input');
                                  s.value = 0.75; s.dispatchEvent(new Event('input')); })()""")
        await asyncio.to_thread(wait_for, lambda: frame_with(live, "walk/speed", 0.75))
        before = frame_with(live, "walk/speed", 0.25)
        assert before is not None
        assert (before.image != frame_with(live, "walk/speed", 0.75).image).any()
        # OSC from elsewhere moves the slider and its label
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(msg("/walk/size", 0.9), ("127.0.0.1", live.osc_port))
        await page.until("document.querySelectorAll('#group-walk input')[1].value === '0.9'")
        assert await page.js("document.querySelectorAll('#group-walk label')[1].textContent"
                             ) == "/walk/size = 0.9"
        # the bool toggle
        await page.js("document.querySelector('#group-_ input[type=checkbox]').click()")
        await asyncio.to_thread(wait_for, lambda: live.state()["params"]["glow"]["target"])
        # the XY pad: a press at a quarter across and a quarter down, dragged to the corner
        await page.js("""(() => {
            const pad = document.querySelector('.pad'), r = pad.getBoundingClientRect();
            const at = (type, fx, fy) => pad.dispatchEvent(new PointerEvent(type, {
                bubbles: true, pointerId: 7, clientX: r.left + fx * r.width,
                clientY: r.top + fy * r.height}));
            at('pointerdown', 0.25, 0.25); at('pointermove', 1.0, 1.0); at('pointerup', 1, 1);
        })()""")
        await asyncio.to_thread(
            wait_for, lambda: live.state()["params"]["pad"]["target"] == [1.0, 0.0])
        # the dot ends where the drag let go (an echo of the press may pass through first)
        await page.until("document.querySelector('.pad .dot').style.left === '100%'")
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()


BUTTONS = """\
from perform import models, seed, trigger, walks

flash = trigger("fx/flash")
look = seed("look/seed", 7, max=999)
model = models.load("cppn:seed=7")


def frame(ctx):
    if flash:  # each fire flips the colours
        ctx.state["inverted"] = not ctx.state.get("inverted", False)
    image = model(walks.seed(look, model.z_dim))
    return 255 - image if ctx.state.get("inverted") else image
"""


async def touch(page: Page, selector: str, *rises: float) -> None:
    """A finger on the middle of the element, slid up by each of `rises` pixels, then lifted:
    real touch input, as a phone sends it (pointer events, then a click for a tap)."""
    x, y = await page.js(f"""(() => {{
        const e = document.querySelector({json.dumps(selector)});
        e.scrollIntoView({{ block: 'center' }});
        const r = e.getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
    await page.call("Input.dispatchTouchEvent", type="touchStart", touchPoints=[{"x": x, "y": y}])
    for rise in rises:
        await page.call("Input.dispatchTouchEvent", type="touchMove",
                        touchPoints=[{"x": x, "y": y - rise}])
    await page.call("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])


def settled(live, **values) -> object:
    """The latest frame drawn with these param values (`fx__flash` for "fx/flash"), once
    three were: by then the patch has seen its fire."""
    wanted = {name.replace("__", "/"): value for name, value in values.items()}

    def frames() -> list:
        return [f for f in list(live.recorder.frames)
                if all(f.params.get(name) == value for name, value in wanted.items())]
    return wait_for(lambda: len(frames()) >= 3 and frames()[-1], what=f"frames with {wanted}")


async def test_trigger_button_and_seed_knob_fire_step_roll_drag_and_follow(tmp_path, live_show):
    """A trigger gets a button: a tap fires it once, and it flashes at every fire, OSC's too.
    A seed gets a knob: its buttons step to the next and previous seed and roll a random one,
    a drag on its dial morphs between seeds, and OSC turns it. The frames follow both."""
    patch = tmp_path / "show.py"
    patch.write_text(BUTTONS)
    live = live_show(patch)
    store = live.show.store
    browser, session, page = await open_page(live.url + "/", str(tmp_path / "profile"))
    knob = "#group-look .knob"
    shows = f"document.querySelector('{knob} .dial output').textContent"
    try:
        await page.until("document.querySelectorAll('#params label').length === 2")
        assert await page.js("document.querySelector('#group-fx button.trigger').textContent"
                             ) == "flash"
        assert await page.js("[...document.querySelectorAll('#params label')]"
                             ".map((l) => l.firstChild.textContent)") == ["/fx/flash = 0",
                                                                           "/look/seed = 7"]
        assert await page.js(shows) == "7"
        assert await page.js(f"[...document.querySelectorAll('{knob} button')]"
                             ".map((b) => b.textContent)") == ["−", "+", "⚄"]
        # big enough for a finger
        assert await page.js("Math.min(...[...document.querySelectorAll('#params button')]"
                             ".map((b) => b.getBoundingClientRect().height))") >= 44
        assert await page.until("socket.readyState === WebSocket.OPEN")
        first = await asyncio.to_thread(settled, live, fx__flash=0, look__seed=7.0)
        # every class the button takes, from now on
        await page.js("""(() => { const b = document.querySelector('.trigger');
            window.flashes = [];
            new MutationObserver(() => flashes.push(b.className))
                .observe(b, { attributeFilter: ['class'] }); })()""")
        # a tap fires the trigger once, the button flashes and the colours flip
        await touch(page, "#group-fx .trigger")
        await asyncio.to_thread(wait_for, lambda: store.target("fx/flash") == 1)
        await page.until("document.querySelector('#group-fx label').firstChild.textContent"
                         " === '/fx/flash = 1'")
        await page.until("flashes.join() === 'trigger fired,trigger'")
        assert store.target("fx/flash") == 1  # the tap's click fired nothing more
        flipped = await asyncio.to_thread(settled, live, fx__flash=1, look__seed=7.0)
        assert (flipped.image != first.image).any()
        # OSC without arguments fires it again: the button flashes, the colours flip back
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(msg("/fx/flash"), ("127.0.0.1", live.osc_port))
        await asyncio.to_thread(wait_for, lambda: store.target("fx/flash") == 2)
        await page.until("document.querySelector('#group-fx label').firstChild.textContent"
                         " === '/fx/flash = 2'")
        await page.until("flashes.join() === 'trigger fired,trigger,trigger fired,trigger'")
        back = await asyncio.to_thread(settled, live, fx__flash=2, look__seed=7.0)
        assert (back.image == first.image).all()
        # + and − step between whole seeds, each its own picture
        await touch(page, f"{knob} button[title='next seed']")
        await asyncio.to_thread(wait_for, lambda: store.target("look/seed") == 8.0)
        await page.until(f"{shows} === '8'")
        eight = await asyncio.to_thread(settled, live, fx__flash=2, look__seed=8.0)
        assert (eight.image != first.image).any()
        await touch(page, f"{knob} button[title='previous seed']")
        await asyncio.to_thread(wait_for, lambda: store.target("look/seed") == 7.0)
        await page.until(f"{shows} === '7'")
        # a finger sliding up the dial morphs toward the next seed
        await touch(page, f"{knob} .dial", 4, 10)
        await asyncio.to_thread(wait_for, lambda: store.target("look/seed") != 7.0)
        between = store.target("look/seed")
        assert 7 < between < 8
        await page.until(f"{shows} === '{between:.2f}'")
        morph = await asyncio.to_thread(settled, live, fx__flash=2, look__seed=between)
        assert (morph.image != first.image).any() and (morph.image != eight.image).any()
        # the dice rolls another whole seed
        await touch(page, f"{knob} button[title='a random seed']")
        await asyncio.to_thread(wait_for, lambda: store.target("look/seed") != between)
        rolled = store.target("look/seed")
        assert rolled == int(rolled) and 0 <= rolled <= 999
        await page.until(f"{shows} === '{int(rolled)}'")
        # OSC turns the knob: its number and its mark
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(msg("/look/seed", 42.0), ("127.0.0.1", live.osc_port))
        await page.until(f"{shows} === '42'")
        assert await page.js(f"document.querySelector('{knob} .mark').style.transform"
                             ) == "rotate(1512deg)"  # 4.2 turns of ten seeds
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()


async def test_editor_opens_saves_and_shows_the_error_line(tmp_path, live_show):
    patch = tmp_path / "show.py"
    patch.write_text(CONTROLS)
    (tmp_path / "other.py").write_text(CONTROLS.replace("seed=7", "seed=3"))
    live = live_show(patch)
    browser, session, page = await open_page(live.url + "/", str(tmp_path / "profile"))
    try:
        names = await page.until("[...document.querySelectorAll('#patches button')]"
                                 ".map((b) => b.textContent).join(' ')")
        assert names == "other.py show.py"
        await page.js("document.querySelector('#patches button[data-name=\"show.py\"]').click()")
        await page.until("document.getElementById('code').value.includes('seed=7')")
        assert await page.js("document.querySelector('#highlight .kw').textContent") == "from"
        assert await page.js("[...document.querySelectorAll('#highlight .nu')]"
                             ".some((n) => n.textContent === '0.25')")
        # change a number and press Save: the show reloads it and draws something else
        await page.js("""(() => { const c = document.getElementById('code');
            c.value = c.value.replace('seed=7', 'seed=8');
            c.dispatchEvent(new Event('input')); document.getElementById('save').click(); })()""")
        await asyncio.to_thread(wait_for, lambda: live.state()["patch"]["version"] == 2)
        assert "seed=8" in patch.read_text()
        await asyncio.to_thread(
            wait_for, lambda: any(f.patch_version == 2 for f in live.recorder.frames))
        old = next(f for f in live.recorder.frames if f.patch_version == 1)
        new = next(f for f in live.recorder.frames if f.patch_version == 2)
        assert old.params["walk/speed"] == new.params["walk/speed"]
        assert (old.image != new.image).any()
        # a syntax error: the editor marks its line
        await page.js("""(() => { const c = document.getElementById('code');
            c.value = c.value.replace('def frame(ctx):', 'def frame(ctx:');
            c.dispatchEvent(new Event('input')); document.getElementById('save').click(); })()""")
        assert await page.until("document.querySelector('#gutter .bad')?.textContent") == "10"
        assert "SyntaxError" in await page.js("document.getElementById('error').textContent")
        # Run switches the show to another patch
        await page.js("document.querySelector('#patches button[data-name=\"other.py\"]').click()")
        await page.until("document.getElementById('code').value.includes('seed=3')")
        await page.js("document.getElementById('run').click()")
        await asyncio.to_thread(
            wait_for, lambda: live.state()["patch"]["file"] == str((tmp_path / "other.py")
                                                                    .resolve()))
        await page.until("document.getElementById('error').className === ''")
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()

"""The preview page in a real headless Chromium, driven over the DevTools protocol."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from conftest import wait_for

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
        await page.js("""(() => { const s = document.querySelector('#params input');
                                  s.value = 0.75; s.dispatchEvent(new Event('input')); })()""")
        await asyncio.to_thread(
            wait_for, lambda: live.state()["params"]["walk/speed"]["value"] == 0.75)
    finally:
        await session.close()
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()

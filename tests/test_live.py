"""The control page's WebSocket, /api/live, with aiohttp's client (no browser)."""

import asyncio

import aiohttp
import pytest
from conftest import wait_for

PATCH = """\
from perform import models, param, walks

speed = param("walk/speed", 0.25, 0.0, 1.0)
glow = param("glow", False)
pad = param("pad", (0.5, 0.5), 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    return model(walks.noise_loop(ctx.t * speed, dim=model.z_dim))
"""


def show_of(text: str, folder, live_show):
    """A live show playing `text` as its patch, and the patch's path."""
    patch = folder / "show.py"
    patch.write_text(text)
    return live_show(patch), patch


def socket_url(live) -> str:
    return live.url.replace("http", "ws") + "/api/live"


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(ws.receive_json(), timeout)


async def test_first_message_has_every_param_then_only_changes(tmp_path, live_show):
    live, patch = show_of(PATCH, tmp_path, live_show)
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(live)) as ws:
        first = await next_json(ws)
        assert first["full"] is True
        assert set(first["params"]) == {"walk/speed", "glow", "pad"}
        assert first["params"]["walk/speed"]["target"] == 0.25
        assert first["params"]["walk/speed"]["type"] == "float"
        assert first["params"]["pad"]["length"] == 2
        assert first["status"]["status"] == "ok" and first["status"]["version"] == 1
        assert first["status"]["file"] == str(patch.resolve())
        # a change from elsewhere (HTTP) comes as itself alone
        async with session.post(live.url + "/api/params", json={"glow": True}) as response:
            assert response.status == 200
        while "changed" not in (message := await next_json(ws)):
            pass
        assert message["changed"] == {"glow": True}
        assert "params" not in message
        # `set` plays params with the usual coercion; what fails is answered
        await ws.send_json({"set": {"walk/speed": 2, "pad": [0.1, 0.9]}})
        changed: dict = {}
        while changed.keys() != {"walk/speed", "pad"}:
            changed.update((await next_json(ws)).get("changed", {}))
        assert changed == {"walk/speed": 1.0, "pad": [0.1, 0.9]}
        assert live.state()["params"]["walk/speed"]["target"] == 1.0
        await ws.send_json({"set": {"nope": 1, "glow": "bright"}})
        while "errors" not in (message := await next_json(ws)):
            pass
        assert set(message["errors"]) == {"nope", "glow"}
        await ws.send_str("not json")
        while "errors" not in (message := await next_json(ws)):
            pass
        assert message["errors"] == {"": 'send {"set": {"name": value, ...}}'}


async def test_a_reload_that_adds_a_param_sends_the_whole_list_again(tmp_path, live_show):
    live, patch = show_of(PATCH, tmp_path, live_show)
    async with aiohttp.ClientSession() as session, session.ws_connect(socket_url(live)) as ws:
        assert (await next_json(ws))["full"]
        patch.write_text(PATCH.replace('glow = param("glow", False)',
                                       'glow = param("glow", False)\nhue = param("hue", 0.5)'))
        while not (message := await next_json(ws)).get("full"):
            pass
        assert "hue" in message["params"]


async def test_the_token_is_needed_on_the_url(tmp_path, live_show):
    patch = tmp_path / "show.py"
    patch.write_text(PATCH)
    live = live_show(patch, token="s3cret")
    url = live.url.replace("http", "ws") + "/api/live"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "?token=wrong")
        assert refused.value.status == 401
        async with session.ws_connect(url + "?token=s3cret") as ws:
            assert (await next_json(ws))["full"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "?token=s3cret",
                                     headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_a_client_that_never_reads_does_not_slow_the_render(tmp_path, live_show):
    """A page that never reads its messages, while another plays a param 60 times a second,
    leaves the frame rate within 10 %."""
    patch = tmp_path / "show.py"
    patch.write_text(PATCH)
    live = live_show(patch)
    url = live.url.replace("http", "ws") + "/api/live"

    async def frame_rate(seconds: float) -> float:
        start = live.state()["frames"]["frames"]
        await asyncio.sleep(seconds)
        return (live.state()["frames"]["frames"] - start) / seconds

    async def sweep(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
        for i in range(int(seconds * 60)):
            await ws.send_json({"set": {"walk/speed": (i % 100) / 100}})
            await asyncio.sleep(1 / 60)

    await asyncio.to_thread(wait_for, lambda: live.state()["frames"]["fps"])
    alone = await frame_rate(1.5)
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(url) as stuck, session.ws_connect(url) as player:
        _, crowded = await asyncio.gather(sweep(player, 1.5), frame_rate(1.5))
        assert not stuck.closed
    assert crowded >= 0.9 * alone, (alone, crowded)

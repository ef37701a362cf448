"""The patch folder over HTTP for the live-coding editor: list, read, save (reloaded like any
save), run another, and nothing outside the folder, ever."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest
from conftest import wait_for

PATCH = """\
import numpy as np


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), {level}, np.float32)
"""


def call(url: str, method: str = "GET", body: bytes | None = None,
         token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def editor(tmp_path, live_show):
    folder = tmp_path / "show"
    folder.mkdir()
    (folder / "main.py").write_text(PATCH.format(level=0.25))
    (folder / "other.py").write_text(PATCH.format(level=1.0))
    (tmp_path / "secret.py").write_text("TOP = 'secret'\n")
    live = live_show(folder / "main.py", token="s3cret")
    live.folder = folder
    return live


def test_the_editor_lists_reads_and_saves_patches_that_then_play(editor) -> None:
    status, body = call(editor.url + "/api/patches")
    listing = json.loads(body)
    assert status == 200 and listing["patches"] == ["main.py", "other.py"]
    assert listing["running"] == "main.py"
    status, source = call(editor.url + "/api/patches/main.py")
    assert status == 200 and source.decode() == PATCH.format(level=0.25)

    new = PATCH.format(level=0.75).encode()
    assert call(editor.url + "/api/patches/main.py", "PUT", new)[0] == 401  # code: token
    status, body = call(editor.url + "/api/patches/main.py", "PUT", new, token="s3cret")
    assert status == 200 and json.loads(body) == {"saved": "main.py", "bytes": len(new),
                                                  "running": True}
    wait_for(lambda: editor.recorder.frames[-1].image[0, 0, 0] == 191, what="the new code")
    assert (editor.folder / "main.py").read_bytes() == new
    assert sorted(p.name for p in editor.folder.iterdir()) == ["main.py", "other.py"]

    broken = b"def frame(ctx):\n    return (\n"
    call(editor.url + "/api/patches/main.py", "PUT", broken, token="s3cret")
    error = wait_for(lambda: editor.state()["patch"]["error"], what="the error")
    assert error["line"] == 2 and "SyntaxError" in error["message"]
    assert editor.recorder.frames[-1].image[0, 0, 0] == 191  # the last good one plays on

    assert call(editor.url + "/api/patches/other.py/run", "POST")[0] == 401
    assert call(editor.url + "/api/patches/other.py/run", "POST", token="s3cret")[0] == 200
    wait_for(lambda: editor.recorder.frames[-1].image[0, 0, 0] == 255, what="the other patch")


@pytest.mark.parametrize("name", ["..%2Fsecret.py", "%2Fetc%2Fpasswd", "sub%2Fx.py",
                                  ".hidden.py", "notes.txt", "..", "x.py%00.txt"])
def test_nothing_outside_the_patch_folder_is_read_or_written(editor, name: str) -> None:
    assert call(f"{editor.url}/api/patches/{name}")[0] in (400, 404)
    status, _ = call(f"{editor.url}/api/patches/{name}", "PUT", b"TOP = 1\n", token="s3cret")
    assert status in (400, 404, 405)
    assert (editor.folder.parent / "secret.py").read_text() == "TOP = 'secret'\n"
    assert sorted(p.name for p in editor.folder.iterdir()) == ["main.py", "other.py"]


def test_a_symlink_out_of_the_folder_is_refused(editor) -> None:
    os.symlink(editor.folder.parent / "secret.py", editor.folder / "link.py")
    assert call(editor.url + "/api/patches/link.py")[0] == 400
    status, body = call(editor.url + "/api/patches/link.py", "PUT", b"TOP = 1\n",
                        token="s3cret")
    assert status == 400 and b"outside the patch folder" in body
    assert (editor.folder.parent / "secret.py").read_text() == "TOP = 'secret'\n"
    assert "link.py" not in json.loads(call(editor.url + "/api/patches")[1])["patches"]

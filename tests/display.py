"""A private, throwaway X server (Xvfb) for tests that open real windows.

Xvfb picks a free display number itself and reports it on the `-displayfd` pipe, so tests
running side by side never fight over ":99".
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from unittest import mock


class XvfbUnavailable(RuntimeError):
    """Xvfb is missing or would not start."""


@contextlib.contextmanager
def xvfb(*screens: str, timeout: float = 10.0) -> Iterator[str]:
    """Run Xvfb with DISPLAY pointing at it (":N"); restore DISPLAY and kill it afterwards.

    `screens` are sizes like "1280x1024x24" (that one when none are given). Several become
    monitors of one display through Xinerama, with RandR off: Xvfb's RandR reports only the
    first screen, and clients such as pyglet believe RandR before Xinerama. Xvfb puts every
    Xinerama screen at (0, 0), so they tell apart by size only.
    """
    screens = screens or ("1280x1024x24",)
    args = [a for i, size in enumerate(screens) for a in ("-screen", str(i), size)]
    if len(screens) > 1:
        args += ["+xinerama", "-extension", "RANDR"]
    exe = shutil.which("Xvfb")
    if exe is None:
        raise XvfbUnavailable("Xvfb is not on PATH (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                [exe, "-displayfd", str(write_fd), *args, "-nolisten", "tcp"],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        try:
            try:
                name = f":{_read_display_number(read_fd, proc, timeout)}"
            except XvfbUnavailable as e:
                log.seek(0)
                said = log.read()[-2000:].decode(errors="replace")
                raise XvfbUnavailable(f"{e}: {said}") from None
            finally:
                os.close(read_fd)
            with mock.patch.dict(os.environ, {"DISPLAY": name}):
                yield name
        finally:
            _kill(proc)


def _read_display_number(fd: int, proc: subprocess.Popen, timeout: float) -> int:
    """Xvfb writes "N\\n" to the pipe once it accepts connections."""
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise XvfbUnavailable(f"Xvfb gave no display number within {timeout:.0f} s")
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 64)
            if not chunk:
                raise XvfbUnavailable(f"Xvfb exited with {proc.wait()}")
            data += chunk
    return int(data)


def _kill(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""A private, throwaway JACK server on its dummy driver, for tests with real MIDI or audio ports.

No sound card needed: the dummy driver keeps the audio clock on a timer. Each server gets its
own name, so test runs side by side never share one, and it runs in its own process group, so
nothing of it outlives the tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO
from unittest import mock

from perform.midi.ports import jack_running


class JackUnavailable(RuntimeError):
    """jackd is missing or would not start."""


@contextlib.contextmanager
def jack_server(timeout: float = 10.0, *, audio: int = 0, period: int = 1024,
                name: str | None = None) -> Iterator[str]:
    """Run `jackd -d dummy` with JACK_DEFAULT_SERVER pointing at it; stop it afterwards.

    `audio` gives it that many capture and playback channels (system:capture_1 ...), for
    audio tests; `period` is frames per cycle at 48 kHz; `name` brings a server back under
    the name of one that was stopped, as if it had restarted.
    """
    exe = shutil.which("jackd")
    if exe is None:
        raise JackUnavailable("jackd is not on PATH (apt-get install jackd2)")
    name = name or f"perform-test-{os.getpid()}-{secrets.token_hex(3)}"
    # 32 ports keep its shared memory under 40 MB (Docker gives /dev/shm 64 MB). Without
    # real-time scheduling a client that runs a cycle late misses that cycle's MIDI: measured
    # on 2 busy cores, 64 frames (1.3 ms) lost 0.1-7 % of messages, 1024 frames (21 ms) none
    command = [exe, "--no-realtime", "--name", name, "--port-max", "32", "-d", "dummy",
               "--rate", "48000", "--period", str(period),
               "--capture", str(audio), "--playback", str(audio)]
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}  # no D-Bus device reservation
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)
        try:
            with mock.patch.dict(os.environ, {"JACK_DEFAULT_SERVER": name}):
                _wait_until_up(proc, timeout, log)
                yield name
        finally:
            _stop(proc)


def _die_with_parent() -> None:
    """In the child before exec: a test run that crashes or is killed takes jackd with it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_until_up(proc: subprocess.Popen, timeout: float, log: IO[bytes]) -> None:
    """Clients may connect once the server's socket exists (what perform looks for too)."""
    deadline = time.monotonic() + timeout
    while not jack_running():
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            said = log.read()[-2000:].decode(errors="replace")
            why = "exited" if proc.poll() is not None else f"was not up within {timeout:.0f} s"
            raise JackUnavailable(f"jackd {why}: {said}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM lets jackd remove its sockets and shared memory; SIGKILL if it will not go."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue

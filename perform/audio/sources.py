"""Where the show's audio comes from: a live input or a decoded file, as mono float32 blocks.

A source hands each block to a sink, `sink(block)`: a fresh, writable 1-D float32 array the
sink may keep (the analyser's `feed`). `source.sink` is a plain attribute, so an owner that
builds its analyser once it knows the sample rate can set it after `start()`.

`LiveInput` records from a sound card through PortAudio (`sounddevice`), and does so in a
child process: this file, run as a script. The reason is what happens when a device goes away
mid-show. PortAudio's JACK backend does not return from closing a stream whose server has
gone (Pa_CloseStream and Pa_Terminate wait for the dead server's thread, ten minutes before
they give up; sounddevice calls them at exit too), and only a fresh Pa_Initialize sees a
server or a USB interface that came back. A child can simply be killed and started again; a
crash in a driver takes only the child with it; and no analysis ever runs on the audio thread.
The child mixes each block to mono and writes it to a pipe; a thread in the show reads the
pipe and calls the sink (measured through JACK: 0.2 to 0.5 ms after the sender's callback).

So that the child starts in a tenth of a second, this file imports nothing from perform and
nothing heavy at the top: sounddevice is loaded only in the child, soundfile and PyAV only
when a file is opened.

`FileInput` decodes a whole file at open and is played against the show's clock: whoever
renders frames calls `advance_to(t)` each frame and the sink gets the samples up to t, so
rehearsing with a file, and offline rendering, stay in step with the frames.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

log = logging.getLogger("perform")

Sink = Callable[[np.ndarray], None]

NO_PORTAUDIO = ("live audio input needs PortAudio and sounddevice: apt-get install libportaudio2 "
                "(macOS: brew install portaudio), pip install sounddevice")
CHILD = Path(__file__)  # run as a script, it is the capture process
START_TIMEOUT_S = 10.0  # for the child to report its device, or its device list
STALL_S = 1.0  # a running stream that delivers nothing for this long has failed
RETRY_S = 2.0  # between tries to reopen a failed input
CLOSE_S = 2.0  # for the child to close its stream when asked, before it is killed
MAX_QUEUED = 64  # blocks the child holds for a show that stopped reading; more are dropped
HEADER = struct.Struct("=II")  # before each block on the pipe: frames, overflows since the last
WHY = "perform-audio: "  # marks the child's last words on stderr
JITTER_S = 0.05  # a file's clock that steps back this little waits for the time to catch up
MAX_STEP_S = 2.0  # a file's clock that jumps further than this starts the analysis afresh


class AudioError(Exception):
    """An audio source cannot be opened or read; the message says which and why."""


class AudioUnavailable(AudioError):
    """PortAudio or sounddevice is missing; the message says what to install."""


def list_devices() -> list[str]:
    """The input devices there are now, e.g. "0: system (JACK Audio Connection Kit), 2 in,
    48000 Hz": the index and name that `LiveInput(device=...)` takes, then the channels."""
    try:
        done = subprocess.run([sys.executable, str(CHILD), "list"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AudioError(f"listing audio devices took over {START_TIMEOUT_S:.0f} s") from None
    reply = _reply(done.stdout.partition(b"\n")[0])
    if "error" in reply:
        raise _error(reply, done.stderr.decode(errors="replace"))
    return reply["devices"]


def _reply(line: bytes) -> dict[str, Any]:
    """The child's one-line JSON answer; {"error": None} where it died before giving one."""
    try:
        return json.loads(line)
    except ValueError:
        return {"error": None}


def _error(reply: dict[str, Any], stderr: str) -> AudioError:
    """What the child said went wrong, or the last thing it printed before it died."""
    why = reply["error"] or f"the audio process failed: {_last_words(stderr)}"
    return (AudioUnavailable if reply.get("unavailable") else AudioError)(why)


def _last_words(stderr: str) -> str:
    """The reason a child gave before it exited, else the last line it printed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line.removeprefix(WHY) for line in lines if line.startswith(WHY)]
    return (ours or lines or ["it exited without a word"])[-1]


@dataclass
class _Child:
    """One capture process: its pipe of blocks, and its stderr kept in a file (never fills)."""

    proc: subprocess.Popen
    stderr: IO[bytes]

    def ask_to_stop(self) -> None:
        """Closing its stdin asks it to close its stream and leave. Politer than a kill: JACK
        notices a killed client only some cycles later, and a server stopped meanwhile can
        die of it (SIGPIPE), leaving its slot in JACK's registry taken."""
        self.proc.stdin.close()

    def stop(self) -> str:
        """Kill it, if it has not left already; all it wrote to stderr."""
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.stderr.seek(0)
        said = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        return said


class LiveInput:
    """A sound card input, read in a child process; it reopens itself after a failure.

    `device` is an index or a case-insensitive part of a name, as `list_devices()` shows them
    (None: the system's default input). `channels` are 1-based, as printed on the interface:
    [1] for a mic on input 1; the default is inputs 1 and 2 (or the only one), since averaging
    every channel of an 8-in interface or of PipeWire's 64-channel `default` would mostly
    average silence. The chosen channels are averaged to mono. `sample_rate` defaults to the
    device's; perform does not resample, so a rate the device cannot run at is an AudioError
    that names its default. `block` is frames per PortAudio callback.

    `start()` raises AudioError for a device, channel or rate that cannot be had. After that
    nothing raises: when the stream stops (device unplugged, JACK server gone) or delivers
    nothing for a second, `status()["state"]` becomes "failed" with the reason in "last_error",
    the sink gets no blocks, and every two seconds it tries to open the same device again at
    the same rate, until it is "running" again. The owner polls `status()` (and may reset its
    analyser when the state changes). The sink runs on this input's reader thread and must not
    block for long: while it does, the child queues 64 blocks, then drops and counts them as
    overflows, next to the overflows PortAudio reports.
    """

    def __init__(self, sink: Sink, device: str | int | None = None,
                 channels: Sequence[int] | None = None, sample_rate: int | None = None,
                 block: int = 256) -> None:
        self.sink = sink
        self._device: str | int | None = device
        self._channels = list(channels) if channels is not None else None
        self._sample_rate = sample_rate
        self._block = block
        self._lock = threading.Lock()  # guards `_child` against close()
        self._child: _Child | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._state = "stopped"
        self._last_error: str | None = None
        self._blocks = 0
        self._overflows = 0
        self._sink_failed = False  # the sink's first exception is logged, the rest counted

    @property
    def sample_rate(self) -> int | None:
        """What the stream runs at: the rate asked for, else (once started) the device's."""
        return self._sample_rate

    def start(self) -> None:
        """Open the device and start reading; AudioError (or AudioUnavailable) if it cannot."""
        if self._thread is not None:
            return
        self._closing.clear()
        self._child = self._spawn()
        self._state = "running"
        self._thread = threading.Thread(target=self._run, name="perform-audio-in", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reading and end the child; the sink gets nothing more. Safe to call twice."""
        with self._lock:
            self._closing.set()
            child = self._child
        if child is not None:
            child.ask_to_stop()  # when it has gone, the reader sees its pipe end and cleans up
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_S)
            if self._thread.is_alive() and child is not None:
                child.proc.kill()
                self._thread.join(timeout=CLOSE_S)
            self._thread = None
        self._state = "stopped"

    @property
    def state(self) -> str:
        """"running", "failed" or "stopped"."""
        return self._state

    def status(self) -> dict[str, Any]:
        """For the state API: which device, how it is doing, and what went wrong last."""
        return {"source": "live", "device": self._device, "sample_rate": self.sample_rate,
                "channels": self._channels, "blocks": self._blocks,
                "overflows": self._overflows, "state": self._state,
                "last_error": self._last_error}

    def _spawn(self) -> _Child:
        """Start a child on our device; it answers with what it opened, or why it could not."""
        spec = {"device": self._device, "channels": self._channels,
                "sample_rate": self._sample_rate, "block": self._block}
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (the child owns it: stop() closes it)
        proc = subprocess.Popen([sys.executable, str(CHILD), "capture", json.dumps(spec)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        child = _Child(proc, stderr)
        timer = threading.Timer(START_TIMEOUT_S, proc.kill)  # a wedged driver: give up
        timer.start()
        try:
            reply = _reply(proc.stdout.readline())
        finally:
            timer.cancel()
        if "error" in reply:
            raise _error(reply, child.stop())
        # reopen exactly this: a name keeps when indices shift, and the analyser keeps its rate
        self._device, self._channels = reply["device"], reply["channels"]
        self._sample_rate = reply["sample_rate"]
        return child

    def _run(self) -> None:
        """Read blocks until the child ends; then fail, and try again every RETRY_S."""
        while True:
            child = self._child
            if child is not None:
                self._pump(child)
                with self._lock:
                    self._child = None
                said = child.stop()
                if self._closing.is_set():
                    return
                self._fail(_last_words(said))
            if self._closing.wait(RETRY_S):
                return
            try:
                child = self._spawn()
            except AudioError as exc:
                self._last_error = str(exc)
                log.debug("audio input %s: still failing: %s", self._device, exc)
                continue
            with self._lock:
                closed = self._closing.is_set()
                if not closed:
                    self._child = child
            if closed:
                child.stop()
                return
            self._state = "running"
            log.info("audio input %s is back", self._device)

    def _fail(self, reason: str) -> None:
        self._state = "failed"
        self._last_error = f"{self._device}: {reason}"
        log.warning("audio input failed, retrying every %.0f s: %s", RETRY_S, self._last_error)

    def _pump(self, child: _Child) -> None:
        """Hand every block the child sends to the sink, until its pipe closes."""
        pipe = child.proc.stdout
        while True:
            head = pipe.read(HEADER.size)
            if len(head) < HEADER.size:
                return
            frames, overflows = HEADER.unpack(head)
            data = pipe.read(frames * 4)
            if len(data) < frames * 4:
                return
            self._blocks += 1
            self._overflows += overflows
            try:
                self.sink(np.frombuffer(data, dtype=np.float32).copy())
            except Exception as exc:  # the show's bug: keep reading, say so once
                self._last_error = f"sink: {exc!r}"
                if not self._sink_failed:
                    self._sink_failed = True
                    log.exception("audio input: the sink failed")


class FileInput:
    """A decoded audio file, played by the show's clock: `advance_to(t)` each frame.

    WAV, FLAC, OGG, MP3 and whatever else libsndfile reads go through soundfile; anything else
    (AAC, M4A, video files) through PyAV. A file neither can read is an AudioError naming it and
    why; a file cut short plays as far as it goes. Channels are averaged to mono, and the
    native `sample_rate` is kept (the analyser is built for it). `samples` is the whole mono
    signal (read-only float32), `duration` its length in seconds.
    """

    def __init__(self, path: str | os.PathLike[str], sink: Sink, loop: bool = False) -> None:
        self.path = Path(path)
        self.sink = sink
        self.loop = loop
        self.samples, self.sample_rate, self.channels = _decode(self.path)
        self.samples.flags.writeable = False
        self.duration = len(self.samples) / self.sample_rate
        self._fed = 0  # samples delivered, on the source's own timeline (loops keep counting)
        self._blocks = 0
        self._jumps = 0

    def advance_to(self, t: float) -> bool:
        """Feed the sink every sample from where it was up to `t` seconds since the start.

        Normally one block (two where a loop wraps). Past the end it feeds nothing, unless
        looping. A clock that jumps back (more than 50 ms), or ahead by more than two seconds,
        is a seek: nothing is fed, the position becomes `t`, and it returns True so that the
        caller resets its analyser; the next call feeds on from `t`. Returns False otherwise.
        A sink that raises raises here: the caller is our own render loop or render job.
        """
        target = max(0, round(t * self.sample_rate))
        step = target - self._fed
        if step < -JITTER_S * self.sample_rate or step > MAX_STEP_S * self.sample_rate:
            self._fed = target
            self._jumps += 1
            return True
        end = target if self.loop else min(target, len(self.samples))
        while self._fed < end:
            start = self._fed % len(self.samples)
            block = self.samples[start:start + end - self._fed]
            self._fed += len(block)
            self._blocks += 1
            self.sink(block.copy())
        return False

    def status(self) -> dict[str, Any]:
        """For the state API: the file, where in it we are, and what has been fed."""
        length = len(self.samples)
        ended = not self.loop and self._fed >= length
        position = self._fed % length if self.loop else min(self._fed, length)
        return {"source": "file", "path": str(self.path), "sample_rate": self.sample_rate,
                "channels": self.channels, "duration": self.duration,
                "position": position / self.sample_rate, "loop": self.loop,
                "blocks": self._blocks, "jumps": self._jumps,
                "state": "ended" if ended else "running", "last_error": None}


def _decode(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples, sample rate, channels in the file); AudioError if unreadable."""
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples, channels = data.mean(axis=1, dtype=np.float32), data.shape[1]
    except soundfile.SoundFileError as exc:
        samples, rate, channels = _decode_av(path, exc)
    if not len(samples) or rate <= 0:
        raise AudioError(f"{path}: no audio could be decoded from it")
    return samples, int(rate), channels


def _decode_av(path: Path, not_sndfile: Exception) -> tuple[np.ndarray, int, int]:
    """What libsndfile cannot read (AAC, M4A, video files), through FFmpeg."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream in it")
            stream = container.streams.audio[0]
            rate = stream.rate or 0
            resampler = av.AudioResampler(format="fltp", rate=rate)  # any format to float
            chunks = [frame.to_ndarray().mean(axis=0, dtype=np.float32)
                      for packet in container.decode(stream)
                      for frame in resampler.resample(packet)]
            chunks += [frame.to_ndarray().mean(axis=0, dtype=np.float32)
                       for frame in resampler.resample(None)]
            channels = stream.layout.nb_channels
    except av.FFmpegError as exc:
        raise AudioError(f"{path}: not an audio file we can read ({not_sndfile}; {exc})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples, rate, channels


# ---- the capture process: this file run as a script -------------------------------------


def _child(argv: list[str]) -> None:
    """`list`: print the input devices; `capture SPEC`: record, writing blocks to stdout.

    The first line on stdout is JSON: the devices, what was opened, or {"error": ...}. Then
    (capture) blocks follow, each a HEADER and float32 mono samples, until the stream stops or
    stalls (it says why on stderr and exits 1), or stdin ends or stdout is closed: the show
    asks it to stop, or is gone (it closes the stream, exit 0). It always leaves by os._exit:
    sounddevice's exit handler would try to close a dead JACK stream, and hang.
    """
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # PortAudio and JACK may print: keep it off our pipe
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: "PortAudio library not found"
        _say(out, {"error": f"{NO_PORTAUDIO} ({exc})", "unavailable": True})
        os._exit(0)
    if argv[0] == "list":
        _say(out, {"devices": [_label(sounddevice, d) for d in _inputs(sounddevice)]})
        os._exit(0)
    try:
        stream, capture, opened = _open(sounddevice, json.loads(argv[1]))
    except AudioError as exc:
        _say(out, {"error": str(exc)})
        os._exit(0)
    _say(out, opened)
    asked = threading.Event()
    threading.Thread(target=_wait_for_eof, args=(asked,), daemon=True).start()
    while not asked.is_set():
        try:
            out.write(capture.blocks.get(timeout=0.1))
            out.flush()
        except queue.Empty:
            pass
        except OSError:  # the show closed its end: it is gone
            break
        if not stream.active:
            _die("the stream stopped (device unplugged, or JACK server gone?)")
        if time.monotonic() - capture.last > STALL_S:
            _die(f"no audio for {STALL_S:.0f} s")
    stream.close()
    sounddevice._terminate()  # closes our JACK client: the server need not find us dead
    os._exit(0)


def _wait_for_eof(asked: threading.Event) -> None:
    """The show closes our stdin to ask us to stop; so does its death."""
    sys.stdin.buffer.read()
    asked.set()


class _Capture:
    """The child's side of a stream: PortAudio's callback mixes to mono and queues."""

    def __init__(self, columns: list[int]) -> None:
        self.columns = columns  # 0-based
        self.blocks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.last = time.monotonic()  # when the callback last ran
        self.overflows = 0  # not yet reported

    def callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """On PortAudio's thread, so nothing slow and nothing that raises."""
        self.last = time.monotonic()
        self.overflows += bool(status.input_overflow)
        if self.blocks.qsize() >= MAX_QUEUED:  # the show is not reading: drop, and say so
            self.overflows += 1
            return
        mono = indata[:, self.columns].mean(axis=1, dtype=np.float32)
        self.blocks.put(HEADER.pack(frames, self.overflows) + mono.tobytes())
        self.overflows = 0


def _say(out: IO[bytes], reply: dict[str, Any]) -> None:
    out.write(json.dumps(reply).encode() + b"\n")
    out.flush()


def _die(reason: str) -> None:
    sys.stderr.write(f"{WHY}{reason}\n")
    sys.stderr.flush()
    os._exit(1)


def _inputs(sd: Any) -> list[dict[str, Any]]:
    return [d for d in sd.query_devices() if d["max_input_channels"] > 0]


def _label(sd: Any, device: dict[str, Any]) -> str:
    api = sd.query_hostapis(device["hostapi"])["name"]
    return (f"{device['index']}: {device['name']} ({api}), {device['max_input_channels']} in, "
            f"{device['default_samplerate']:.0f} Hz")


def _find(sd: Any, wanted: str | int | None) -> dict[str, Any]:
    """An input by index, by exact name, or by part of a name (case-insensitive); else the
    default input. The error lists the inputs there are."""
    inputs = _inputs(sd)
    if wanted is None:
        try:
            found = [sd.query_devices(kind="input")]
        except sd.PortAudioError:
            found = []
        what = "default audio input"
    elif isinstance(wanted, int) or wanted.isdigit():
        found = [d for d in inputs if d["index"] == int(wanted)]
        what = f"audio input number {wanted}"
    else:
        needle = wanted.lower()
        found = ([d for d in inputs if d["name"].lower() == needle]
                 or [d for d in inputs if needle in d["name"].lower()])
        what = f"audio input matching {wanted!r}"
    if not found:
        there = "; ".join(_label(sd, d) for d in inputs) or "none"
        raise AudioError(f"no {what}; inputs: {there}")
    return found[0]


def _open(sd: Any, spec: dict[str, Any]) -> tuple[Any, _Capture, dict[str, Any]]:
    """Open and start the stream `spec` asks for: the stream, its capture, what was opened."""
    device = _find(sd, spec["device"])
    name, available = device["name"], device["max_input_channels"]
    chosen = sorted(set(spec["channels"] or range(1, min(2, available) + 1)))
    if not chosen or not all(1 <= c <= available for c in chosen):
        raise AudioError(f"{name} has inputs 1 to {available}; asked for {spec['channels']}")
    default_rate = round(device["default_samplerate"])
    rate = spec["sample_rate"] or default_rate
    try:
        sd.check_input_settings(device=device["index"], channels=max(chosen), dtype="float32",
                                samplerate=rate)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioError(f"{name} cannot record at {rate} Hz ({exc}); it runs at "
                         f"{default_rate} Hz: leave the rate unset (perform does not resample)"
                         ) from None
    capture = _Capture([c - 1 for c in chosen])
    try:
        stream = sd.InputStream(device=device["index"], channels=max(chosen), samplerate=rate,
                                blocksize=spec["block"], dtype="float32", latency="low",
                                callback=capture.callback)
        stream.start()
        capture.last = time.monotonic()
    except sd.PortAudioError as exc:
        raise AudioError(f"{name}: {exc}") from None
    return stream, capture, {"device": name, "channels": chosen, "sample_rate": rate}


if __name__ == "__main__":
    _child(sys.argv[1:])

"""MIDI ports by name: open what matches, follow controllers that come and go, never stop the show.

python-rtmidi talks to the MIDI system and mido gives the messages their shape. The system is
ALSA where the kernel sequencer exists, else a running JACK server, or `$PERFORM_MIDI_API`.

Our clients and virtual ports are all called "perform" and are never matched, so `all` on
both sides cannot feed the show its own output.

Input is polled, not called back: python-rtmidi runs a Python callback on the MIDI system's
own thread, and closing a port waits for that thread (ALSA joins it, JACK cancels it) while
the closing thread holds the GIL that the callback is waiting for: a hang at the very moment
a controller is unplugged or the show stops. Without a callback rtmidi queues messages
natively, and one reader thread drains every port each millisecond: about 1 ms more latency,
and no Python ever runs on a MIDI system thread.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

import mido

try:
    import rtmidi
except ImportError as exc:  # the Linux wheel needs the system's libasound.so.2
    rtmidi = None
    NO_RTMIDI = f"python-rtmidi will not load ({exc}); on Debian/Ubuntu: apt-get install libasound2"

log = logging.getLogger("perform")

CLIENT = "perform"  # our client and virtual port name on every MIDI system
OURS = re.compile(rf"{CLIENT}(-\d+)?(:|$)")  # JACK calls a second client "perform-01"
LOOPBACK = "midi through"  # ALSA's echo port: with `all` both ways we would hear ourselves
ALSA_SEQ = Path("/dev/snd/seq")
QUEUE_SIZE = 4096  # messages rtmidi holds per port between two polls
# seconds between closing two JACK ports: libjack may crash a client whose port goes while
# it still handles the notifications of the last one that went (jack2 issues 216 and 340)
JACK_SETTLE = 0.05

Port: TypeAlias = "rtmidi.MidiIn | rtmidi.MidiOut"


class MidiUnavailable(RuntimeError):
    """No MIDI system to talk to; the message says what would give one."""


def jack_running() -> bool:
    """JACK 2 listens on a socket in /dev/shm; looking for it keeps libjack from printing errors."""
    server = os.environ.get("JACK_DEFAULT_SERVER", "default")
    return Path(f"/dev/shm/jack_{server}_{os.getuid()}_0").exists()


def pick_api(name: str | None = None) -> int:
    """The rtmidi API: `name`, else $PERFORM_MIDI_API, else what this machine runs."""
    if rtmidi is None:
        raise MidiUnavailable(NO_RTMIDI)
    compiled = rtmidi.get_compiled_api()
    name = name or os.environ.get("PERFORM_MIDI_API")
    if name:
        api = rtmidi.get_compiled_api_by_name(name.lower())
        if api not in compiled:
            known = ", ".join(rtmidi.get_api_name(a) for a in compiled)
            raise MidiUnavailable(f"MIDI system {name!r} is not available here (known: {known})")
        return api
    if not sys.platform.startswith("linux"):
        return rtmidi.API_UNSPECIFIED  # CoreMIDI or Windows MM, always there
    if ALSA_SEQ.exists() and rtmidi.API_LINUX_ALSA in compiled:
        return rtmidi.API_LINUX_ALSA
    if rtmidi.API_UNIX_JACK in compiled and jack_running():
        return rtmidi.API_UNIX_JACK
    raise MidiUnavailable("no MIDI system: no ALSA sequencer (/dev/snd/seq: modprobe snd-seq) "
                          "and no JACK server (start one, e.g. `jackd -d dummy`); "
                          "PERFORM_MIDI_API=alsa|jack picks one")


def list_ports(api: str | None = None) -> tuple[list[str], list[str]]:
    """(inputs, outputs) as `--midi-in` and `--midi-out` see them; raises only MidiUnavailable."""
    chosen = pick_api(api)
    try:
        probes = rtmidi.MidiIn(chosen, CLIENT), rtmidi.MidiOut(chosen, CLIENT)
    except rtmidi.RtMidiError as exc:
        raise MidiUnavailable(f"MIDI ({rtmidi.get_api_name(chosen)}): {exc}") from None
    try:
        inputs, outputs = ([n for n in p.get_ports() if not OURS.match(n)] for p in probes)
    except rtmidi.RtMidiError as exc:
        raise MidiUnavailable(f"MIDI ({rtmidi.get_api_name(chosen)}): {exc}") from None
    finally:
        for probe in probes:
            probe.delete()
    return inputs, outputs


def decode(data: list[int], running: int, delta: float = 0.0) -> tuple[mido.Message, int]:
    """One message from rtmidi's bytes and the running status after it; ValueError on garbage.

    rtmidi hands each event over as the sender wrote it, and a raw sender may leave out a
    repeated channel status byte (running status): `running` is the last one seen, 0 for none.
    `delta` becomes `message.time`: seconds since the port's previous message, timed by
    rtmidi on arrival, so a MIDI clock reads true even when our reader thread runs late.
    """
    if data and data[0] < 0x80 and running:
        data = [running, *data]
    message = mido.Message.from_bytes(data, time=delta)
    if data[0] < 0xF0:
        running = data[0]
    elif data[0] < 0xF8:
        running = 0  # system common cancels running status; real-time does not
    return message, running


@dataclass
class PortStats:
    """Counters per port name, kept while it is away, for /api/state."""

    connected: bool = False
    messages: int = 0  # received (inputs) or sent (outputs)
    errors: int = 0  # undecodable or refused by our callback (inputs), failed sends (outputs)
    disconnects: int = 0


class _Ports:
    """What inputs and outputs share: matching by name, rescans, stats, closing."""

    kind = ""  # "in" or "out", for the log

    def __init__(self, wanted: Iterable[str], *, api: str | None = None,
                 virtual: bool = True) -> None:
        self.wanted = list(wanted)
        self._needles = [w.lower() for w in self.wanted]
        self._lock = threading.Lock()  # guards `_ports` against reading, sending, closing
        self._changing = threading.Lock()  # one rescan or close at a time
        self._ports: dict[str, Port] = {}  # name -> open port; replaced, never mutated
        self._stats: dict[str, PortStats] = {}
        self._failing: set[str] = set()  # ports that would not open, told once
        self._virtual: str | None = None
        self._probe: Port | None = None  # lists the ports: our virtual port, or a bare client
        self._last_error = ""
        self.api: int | None = None
        self.error: str | None = None
        try:
            self.api = pick_api(api)
            self._probe = self._create()
        except Exception as exc:  # no MIDI system, or one that will not give us a client
            self.error = str(exc)
            log.log(logging.WARNING if self.wanted else logging.DEBUG, "MIDI %s: %s", self.kind,
                    exc)
            return
        if virtual:
            self._open_virtual()

    def _create(self) -> Port:
        raise NotImplementedError

    def _open_virtual(self) -> None:
        """Our own port, for a DAW to connect to; not every system has them (Windows MM)."""
        assert self._probe is not None
        try:
            self._probe.open_virtual_port(CLIENT)
        except (NotImplementedError, rtmidi.RtMidiError) as exc:
            log.info("MIDI %s: no virtual port on this system (%s)", self.kind, exc)
            self._probe.delete()
            self._probe = self._create()
            return
        self._virtual = CLIENT
        self._stats[CLIENT] = PortStats(connected=True)
        with self._lock:
            self._ports = {CLIENT: self._probe}

    def _wants(self, name: str) -> bool:
        if OURS.match(name):
            return False
        low = name.lower()
        return any(LOOPBACK not in low if n == "all" else n in low for n in self._needles)

    def rescan(self) -> list[str]:
        """Open matching ports that appeared, close the ones that vanished; never raises.

        Returns the names of the ports it opened. Opening a port takes the MIDI system
        milliseconds: call this from a worker thread (`asyncio.to_thread`), not the event loop.
        """
        if not self._needles:
            return []
        with self._changing:
            if self._probe is None:  # no MIDI system, or closed
                return []
            try:
                return self._rescan(self._probe)
            except Exception as exc:  # a MIDI system in trouble must not stop the show
                if str(exc) != self._last_error:
                    log.warning("MIDI %s: cannot list ports: %s", self.kind, exc)
                self._last_error = str(exc)
                return []

    def _rescan(self, probe: Port) -> list[str]:
        with self._lock:  # the reader polls the probe when it is our virtual input
            present = [n for n in dict.fromkeys(probe.get_ports()) if self._wants(n)]
        gone = [n for n in self._ports if n != self._virtual and n not in present]
        opened = {}
        for name in present:
            if name not in self._ports and (port := self._connect(name)) is not None:
                opened[name] = port
        if not (gone or opened):
            return []
        for name in opened:  # before the reader can see the port
            self._stats.setdefault(name, PortStats()).connected = True
        with self._lock:
            closing = [self._ports[n] for n in gone]
            self._ports = {n: p for n, p in self._ports.items() if n not in gone} | opened
        self._delete(closing)  # nobody can reach them any more
        for name in gone:
            stats = self._stats[name]
            stats.connected, stats.disconnects = False, stats.disconnects + 1
            log.warning("MIDI %s: %s disconnected; waiting for it to come back", self.kind, name)
        for name in opened:
            log.info("MIDI %s: %s connected", self.kind, name)
        return list(opened)

    def _connect(self, name: str) -> Port | None:
        port = self._create()
        try:
            port.open_port(port.get_ports().index(name), self.kind)  # ValueError: gone again
        except Exception as exc:  # busy, gone, refused: try again at the next rescan
            port.delete()
            if name not in self._failing:
                log.warning("MIDI %s: cannot open %s: %s", self.kind, name, exc)
            self._failing.add(name)
            return None
        self._failing.discard(name)
        return port

    def _delete(self, ports: list[Any]) -> None:
        for i, port in enumerate(ports):
            if i and self.api == rtmidi.API_UNIX_JACK:
                time.sleep(JACK_SETTLE)
            port.delete()

    def stats(self) -> dict[str, Any]:
        """For /api/state: the system, what was asked for, and each port's counters."""
        return {"api": None if self.api is None else rtmidi.get_api_name(self.api),
                "wanted": self.wanted, "virtual": self._virtual, "error": self.error,
                "ports": {name: asdict(s) for name, s in list(self._stats.items())}}

    def close(self) -> None:
        """Close every port; safe to call twice."""
        with self._changing:
            with self._lock:
                ports, self._ports = self._ports, {}
            doomed, probe, self._probe = list(ports.values()), self._probe, None
            if probe is not None and probe not in doomed:  # the probe may be our virtual port
                doomed.append(probe)
            self._delete(doomed)
            for stats in self._stats.values():
                stats.connected = False


class MidiInputs(_Ports):
    """Every input port whose name contains one of `wanted` (any case; `all`), plus our own
    virtual input "perform"; each message goes to `on_message(port_name, message)`.

    `on_message` runs on this object's reader thread and must be quick: hand the message to
    the event loop with `loop.call_soon_threadsafe`.
    """

    kind = "in"

    def __init__(self, wanted: Iterable[str], on_message: Callable[[str, mido.Message], Any], *,
                 api: str | None = None, virtual: bool = True, poll: float = 0.001) -> None:
        self.on_message = on_message
        self.poll = poll
        self._running: dict[str, int] = {}  # running status per port
        self._callback_failed = False
        self._stop = threading.Event()
        super().__init__(wanted, api=api, virtual=virtual)
        self._reader = threading.Thread(target=self._read, name="perform-midi-in", daemon=True)
        if self._probe is not None:
            self._reader.start()

    def _create(self) -> rtmidi.MidiIn:
        port = rtmidi.MidiIn(self.api, CLIENT, queue_size_limit=QUEUE_SIZE)
        port.ignore_types(sysex=False, timing=False, active_sense=True)
        return port

    def _read(self) -> None:
        while not self._stop.wait(self.poll):
            with self._lock:
                batch = [(name, got) for name, port in self._ports.items()
                         for got in iter(port.get_message, None)]
            for name, (data, delta) in batch:
                self._deliver(name, data, delta)

    def _deliver(self, name: str, data: list[int], delta: float) -> None:
        stats = self._stats[name]
        try:
            message, self._running[name] = decode(data, self._running.get(name, 0), delta)
        except ValueError:
            stats.errors += 1
            return
        stats.messages += 1
        try:
            self.on_message(name, message)
        except Exception:
            stats.errors += 1
            if not self._callback_failed:  # once: a broken handler fails on every message
                log.exception("MIDI in: the message handler failed (told once, counted always)")
            self._callback_failed = True

    def close(self) -> None:
        self._stop.set()
        if self._reader.is_alive():
            self._reader.join(timeout=1.0)  # stuck in on_message? it finds no ports after
        super().close()


class MidiOutputs(_Ports):
    """Every output port whose name contains one of `wanted` (any case; `all`), plus our own
    virtual output "perform"; `send` goes to all of them.
    """

    kind = "out"

    def _create(self) -> rtmidi.MidiOut:
        return rtmidi.MidiOut(self.api, CLIENT)

    def send(self, message: mido.Message, only: str | None = None) -> None:
        """To every open port, or those whose name contains `only` (any case); a port that
        refuses is counted, never raised."""
        data = message.bytes()
        needle = only.lower() if only else ""
        with self._lock:
            for name, port in self._ports.items():
                if needle not in name.lower():
                    continue
                stats = self._stats[name]
                try:
                    port.send_message(data)
                except Exception:
                    stats.errors += 1
                else:
                    stats.messages += 1

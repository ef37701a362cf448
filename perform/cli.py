"""`perform run` for the stage, `perform render` for stills and sequences."""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
import time
from pathlib import Path

import torch

from perform.audio.features import DEFAULT_BANDS
from perform.audio.listen import AudioConfig, Listening
from perform.audio.sources import AudioError
from perform.core.fit import parse_size
from perform.core.loader import PatchLoadError, load_patch
from perform.core.memory import keep_freed_memory
from perform.core.params import ParamStore
from perform.engine import Engine
from perform.midi.rig import MidiConfig
from perform.models.host import ModelHost
from perform.models.stylegan.model import PRECISIONS
from perform.outputs.base import OutputSpec
from perform.outputs.recording import open_writer
from perform.outputs.window import display_available
from perform.show import Show, ShowConfig, pick_device
from perform.tempo import FixedTempo

DEFAULT_PATCH = Path(__file__).resolve().parent.parent / "patches" / "spacewalk.py"


def size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def channels(text: str) -> tuple[int, ...]:
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} should look like 1,2") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: inputs count from 1")
    return found


def bands(text: str) -> dict[str, tuple[float, float]]:
    found = {}
    for part in text.split(","):
        name, _, span = part.partition("=")
        low, _, high = span.partition("-")
        try:
            edges = (float(low), float(high))
        except ValueError:
            edges = (0.0, 0.0)
        if not name.strip() or not 0 <= edges[0] < edges[1]:
            raise argparse.ArgumentTypeError(f"{part!r} should look like low=20-250")
        found[name.strip()] = edges
    return found


def output(text: str) -> OutputSpec:
    try:
        return OutputSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} should be a positive number")
    return value


def target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} should look like 127.0.0.1:9001")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="perform", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="perform live: OSC, HTTP preview, window")
    run.add_argument("patch", nargs="?", type=Path, default=DEFAULT_PATCH,
                     help="patch file, hot-reloaded on save (default: patches/spacewalk.py)")
    run.add_argument("--size", type=size, default=(512, 512), help="WxH, default 512x512")
    run.add_argument("--fps", type=positive, default=60.0)
    run.add_argument("--osc-port", type=int, default=9000, help="UDP and TCP (default 9000)")
    run.add_argument("--http-port", type=int, default=8080)
    run.add_argument("--oscquery-port", type=int, default=None,
                     help="OSCQuery HTTP/WebSocket port (default: the HTTP port + 1)")
    run.add_argument("--no-zeroconf", action="store_true",
                     help="do not advertise OSCQuery/OSC with mDNS (Bonjour)")
    run.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only)")
    run.add_argument("--output", action="append", type=output, metavar="KIND[:OPTION=VALUE,...]",
                     help="where frames go (repeatable, all at once): window (screen=N, "
                     "fullscreen, vsync=off, overlay, fit=crop), record:path=show.mp4 "
                     "(codec=hevc), ndi:name=perform (alpha=luma), virtualcam, spout, syphon; "
                     "each also takes size=WxH, fit=letterbox|crop|stretch and fps=N. Default: "
                     "a window where a display exists. The browser preview always runs")
    run.add_argument("--stills", type=Path, metavar="FOLDER",
                     help="where stills go (/perform/still, S in the window, the preview's "
                     "button); default: the patch folder's stills/")
    run.add_argument("--headless", action="store_true", help="no window")
    run.add_argument("--device", default="auto",
                     help="auto (CUDA, else Apple MPS, else CPU), cpu, cuda or mps")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="StyleGAN arithmetic. auto: mixed on CUDA, fp32 elsewhere; mixed: "
                     "half precision on the blocks the checkpoint trained in it; bf16: all in "
                     "bfloat16, about 35 %% faster on CPUs with AMX; fp32 to rule out "
                     "half-precision artefacts")
    run.add_argument("--torch-threads", type=int, metavar="N",
                     help="CPU threads for the model (default: torch's, one per core); fewer "
                     "leaves a core for OSC, steadier frame times under heavy traffic")
    run.add_argument("--bpm", type=positive, default=120.0, help="tempo behind ctx.beat")
    run.add_argument("--link", action="store_true",
                     help="share tempo and beat with Ableton Link peers on the network")
    run.add_argument("--midi-in", action="append", default=[], metavar="NAME",
                     help="MIDI inputs whose name contains NAME (any case; `all` for every one); "
                     "repeatable; see `perform midi list`. Unplugged ports reconnect by themselves")
    run.add_argument("--midi-out", action="append", default=[], metavar="NAME",
                     help="MIDI outputs for LED feedback (and --midi-clock-out); repeatable")
    run.add_argument("--midi-map", action="append", default=[], type=Path, metavar="FILE",
                     help="controller mapping (TOML, hot-reloaded; MIDI learn writes to the "
                     "first); default: the patch folder's midi.toml and the shipped mappings "
                     "of the controllers plugged in")
    run.add_argument("--midi-clock", action="store_true",
                     help="follow a MIDI clock (start/stop/continue/song position) from the "
                     "inputs instead of a fixed --bpm")
    run.add_argument("--midi-clock-out", action="store_true",
                     help="send MIDI clock to the outputs, from --bpm or Ableton Link")
    run.add_argument("--no-midi", action="store_true",
                     help="no MIDI at all, not even perform's own virtual ports")
    run.add_argument("--audio-in", nargs="?", const="", metavar="DEVICE",
                     help="listen to a sound card input (a number or part of a name, see "
                     "`perform audio list`; alone: the default input): ctx.audio in patches")
    run.add_argument("--audio-file", type=Path, metavar="FILE",
                     help="listen to a file instead, played by the show's clock, looping "
                     "(rehearsal)")
    run.add_argument("--audio-channels", type=channels, metavar="1,2",
                     help="which inputs to listen to, averaged (default 1 and 2)")
    run.add_argument("--audio-bands", type=bands, metavar="low=20-250,...",
                     help="the frequency bands of ctx.audio (default low=20-250,mid=250-4000,"
                     "high=4000-16000)")
    run.add_argument("--audio-tempo", action="store_true",
                     help="the beat tracker drives ctx.beat (instead of --bpm)")
    run.add_argument("--osc-out", type=target, action="append", default=[],
                     metavar="HOST:PORT", help="send OSC feedback there (param changes, beat, "
                     "fps, errors); repeatable")
    run.add_argument("--osc-max-delay", type=positive, default=10.0, metavar="SECONDS",
                     help="hold timetagged bundles at most this far ahead (default 10)")
    run.add_argument("--token", default=os.environ.get("PERFORM_TOKEN"),
                     help="secret for every HTTP change, /perform/patch/load, preset and scene "
                     "saves, scene recalls, stills and MIDI learn when --host is not loopback "
                     "(default: $PERFORM_TOKEN, else a random one, printed at start with a "
                     "link that carries it)")
    run.add_argument("--resume", action="store_true",
                     help="start from the patch folder's scenes/autosave.json (saved every "
                          "5 s): the patch and every param as they were")

    audio = commands.add_parser("audio", help="audio inputs")
    audio.add_subparsers(dest="audio_command", required=True).add_parser(
        "list", help="the audio inputs this machine has")

    midi = commands.add_parser("midi", help="MIDI ports")
    midi.add_subparsers(dest="midi_command", required=True).add_parser(
        "list", help="the MIDI inputs and outputs this machine has")

    convert = commands.add_parser(
        "convert", help="a StyleGAN checkpoint (.pkl, .pt) to perform's .safetensors: loads "
        "several times faster, and nothing in it is ever unpickled")
    convert.add_argument("source", type=Path)
    convert.add_argument("target", type=Path)

    render = commands.add_parser("render", help="render a patch offline, frame-exact")
    render.add_argument("patch", type=Path)
    render.add_argument("--seconds", type=positive,
                        help="how long (default: as long as --audio; needed without it)")
    render.add_argument("--fps", type=positive, default=30.0)
    render.add_argument("--size", type=size, default=(512, 512))
    render.add_argument("--out", type=Path, required=True,
                        help="a .mp4/.mov/.mkv file (H.264) or a folder for PNG stills")
    render.add_argument("--device", default="cpu")
    render.add_argument("--precision", choices=PRECISIONS, default="auto")
    render.add_argument("--bpm", type=positive, default=120.0)
    render.add_argument("--audio", type=Path, metavar="FILE",
                        help="a music video: ctx.audio hears this file at each frame's time, "
                        "and its sound goes into the video")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "1 change detected" per save
    keep_freed_memory()
    # torch's ~170k objects, moved out of the collector's sight: a full collection over them
    # takes ~60 ms, on whichever thread (the render's, the audio's) happens to trigger it
    gc.freeze()
    if args.command == "midi":
        return midi_list()
    if args.command == "audio":
        return audio_list()
    if args.command == "convert":
        return convert(args.source, args.target)
    if not args.patch.is_file():
        print(f"perform: no patch file at {args.patch}", file=sys.stderr)
        return 1
    if args.command == "render":
        return render(args)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.midi_clock and (args.link or args.midi_clock_out):
        print("perform: --midi-clock follows another clock: it goes with neither --link nor "
              "--midi-clock-out", file=sys.stderr)
        return 2
    midi = None if args.no_midi else MidiConfig(
        inputs=tuple(args.midi_in), outputs=tuple(args.midi_out), maps=tuple(args.midi_map),
        clock_in=args.midi_clock, clock_out=args.midi_clock_out)
    specs = args.output or [OutputSpec("window", {})]
    window = next((spec for spec in specs if spec.kind == "window"), None)
    if window is not None and (args.headless or not display_available()):
        if args.output:
            print("perform: no display here: no window", file=sys.stderr)
        window = None
    outputs = tuple(spec for spec in specs if spec.kind not in ("window", "preview", "none"))
    audio = None
    if args.audio_in is not None or args.audio_file is not None:
        audio = AudioConfig(device=args.audio_in or None, file=args.audio_file,
                            channels=args.audio_channels,
                            bands=args.audio_bands or DEFAULT_BANDS, tempo=args.audio_tempo)
    try:
        show = Show(ShowConfig(patch=args.patch, width=args.size[0], height=args.size[1],
                               fps=args.fps, host=args.host, osc_port=args.osc_port,
                               http_port=args.http_port, window=window, outputs=outputs,
                               stills=args.stills, device=args.device,
                               precision=args.precision,
                               bpm=args.bpm, osc_out=tuple(args.osc_out),
                               oscquery_port=args.oscquery_port, zeroconf=not args.no_zeroconf,
                               osc_max_delay=args.osc_max_delay, token=args.token,
                               link=args.link, midi=midi, audio=audio,
                               resume=args.resume))
        show.run()
    except ValueError as exc:  # an --osc-out host that does not resolve, say
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"perform: cannot start: {exc.strerror or exc} (is another show running? "
              "pick other ports with --osc-port / --http-port / --oscquery-port)", file=sys.stderr)
        return 1
    return 0


def audio_list() -> int:
    """Print the inputs `--audio-in` can listen to."""
    from perform.audio.sources import AudioUnavailable, list_devices

    try:
        names = list_devices()
    except AudioUnavailable as exc:
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    print("Audio inputs:")
    for name in names or ["(none)"]:
        print(f"  {name}")
    return 0


def midi_list() -> int:
    """Print the ports a controller could be found under (`--midi-in` matches by substring)."""
    from perform.midi.ports import MidiUnavailable, list_ports

    try:
        inputs, outputs = list_ports()
    except MidiUnavailable as exc:
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    for title, names in (("MIDI inputs", inputs), ("MIDI outputs", outputs)):
        print(f"{title}:")
        for name in names or ["(none)"]:
            print(f"  {name}")
    return 0


def convert(source: Path, target: Path) -> int:
    from perform.models.stylegan.checkpoints import CheckpointError
    from perform.models.stylegan.checkpoints import convert as convert_checkpoint

    started = time.monotonic()
    try:
        checkpoint = convert_checkpoint(source, target)
    except (CheckpointError, OSError) as exc:
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    c = checkpoint.config
    print(f"perform: {source.name} ({checkpoint.source} StyleGAN2, {c.img_resolution}px, "
          f"z {c.z_dim}, w {c.w_dim}, {c.c_dim or 'no'} classes) -> {target} in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def render(args: argparse.Namespace) -> int:
    """Frame i is drawn at t = i / fps with the params' defaults: the same file twice."""
    width, height = args.size
    store = ParamStore()
    models = ModelHost(width, height, pick_device(args.device), args.precision)
    engine = Engine(store, models, width=width, height=height, fps=args.fps,
                    tempo=FixedTempo(args.bpm))
    torch.manual_seed(0)
    listening = None
    try:
        if args.audio is not None:
            listening = Listening.file(args.audio)
            engine.audio = listening.at
        engine.offer(load_patch(args.patch.resolve(), 1, models))
    except AudioError as exc:
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    except PatchLoadError as exc:
        print(f"perform: {exc.error}", file=sys.stderr)
        return 1
    if args.seconds is None and listening is None:
        print("perform: how long? give --seconds (or --audio)", file=sys.stderr)
        return 2
    seconds = args.seconds or listening.source.duration  # type: ignore[union-attr]
    count = round(seconds * args.fps)
    started = time.monotonic()
    try:
        writer = open_writer(args.out, fps=args.fps, width=width, height=height,
                             audio_rate=listening.source.sample_rate if listening else None)
    except (ValueError, OSError) as exc:
        print(f"perform: {exc}", file=sys.stderr)
        return 1
    with writer:
        for i in range(count):
            frame = engine.render_one(i / args.fps)
            if engine.error is not None:  # a half-made file is worse than none
                writer.abort()
                print(f"perform: {engine.error}", file=sys.stderr)
                return 1
            writer.write(frame.image)
            if listening is not None:  # the sound of this frame's 1/fps seconds
                rate, samples = listening.source.sample_rate, listening.source.samples
                writer.write_audio(samples[round(i * rate / args.fps):
                                           round((i + 1) * rate / args.fps)])
            if sys.stderr.isatty():
                print(f"\rframe {i + 1}/{count}", end="", file=sys.stderr)
    took = time.monotonic() - started
    print(f"\nperform: {count} frames to {args.out} in {took:.1f} s "
          f"({count / took:.1f} fps)", file=sys.stderr)
    return 0

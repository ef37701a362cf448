"""OSC 1.0/1.1 packets as bytes: our own decoder, python-osc's builder for what we send.

We decode ourselves because python-osc's parser loops forever on a negative bundle element
size, logs to the root logger on unknown type tags and reads the "r" colour tag as a plain
int; a show server must answer any byte string with a clean `OscError` in bounded time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pythonosc.osc_message_builder import OscMessageBuilder

NTP_EPOCH = 2208988800  # seconds from 1900 (OSC timetags) to 1970 (Unix time)
IMMEDIATELY = 0.0  # the timetag of a message to apply on arrival
MAX_NESTING = 8

_INT, _FLOAT, _DOUBLE, _LONG = struct.Struct(">i"), struct.Struct(">f"), struct.Struct(">d"), \
    struct.Struct(">q")
_TIMETAG = struct.Struct(">II")
_FIXED = {ord("i"): _INT, ord("f"): _FLOAT, ord("d"): _DOUBLE, ord("h"): _LONG}
_CONSTANT = {ord("T"): True, ord("F"): False, ord("N"): None, ord("I"): None}


class OscError(ValueError):
    """Bytes that are not a well-formed OSC packet; the message says where it went wrong."""


@dataclass(frozen=True)
class Timetag:
    """A "t" argument: kept apart from numbers, so no param mistakes a date for a value."""

    seconds: float  # Unix time, or IMMEDIATELY


class Message(NamedTuple):
    address: str
    args: tuple[Any, ...]
    timetag: float  # Unix seconds, or IMMEDIATELY


def parse(data: bytes) -> list[Message]:
    """Every message in a packet, bundles flattened; each keeps its innermost bundle's timetag."""
    out: list[Message] = []
    stack = [(0, len(data), IMMEDIATELY, 0)]
    while stack:  # iterative: nesting depth is checked, never recursed
        start, end, timetag, depth = stack.pop()
        if not data.startswith(b"#bundle\0", start, end):
            out.append(_message(data, start, end, timetag))
            continue
        if depth >= MAX_NESTING:
            raise OscError("bundles nested too deep")
        if end - start < 16:
            raise OscError("bundle is too short")
        timetag = _timetag(*_TIMETAG.unpack_from(data, start + 8))
        index, elements = start + 16, []
        while index < end:
            if end - index < 4:
                raise OscError("truncated bundle element")
            (size,) = _INT.unpack_from(data, index)
            if size <= 0 or size % 4 or index + 4 + size > end:
                raise OscError(f"bad bundle element size {size}")
            elements.append((index + 4, index + 4 + size, timetag, depth + 1))
            index += 4 + size
        stack.extend(reversed(elements))  # popped in the order they were written
    return out


def _timetag(seconds: int, fraction: int) -> float:
    if seconds == 0 and fraction <= 1:
        return IMMEDIATELY
    return seconds - NTP_EPOCH + fraction / 2**32


def _string(data: bytes, index: int, end: int) -> tuple[str, int]:
    nul = data.find(b"\0", index, end)
    if nul < 0:
        raise OscError("string is not terminated")
    return data[index:nul].decode("utf-8", "replace"), (nul // 4 + 1) * 4


def _message(data: bytes, start: int, end: int, timetag: float) -> Message:
    if data[start:start + 1] != b"/":
        raise OscError("element is neither a message nor a bundle")
    address, index = _string(data, start, end)
    if index >= end:
        return Message(address, (), timetag)  # OSC 1.0 allows a message with no type tags
    if data[index:index + 1] != b",":
        raise OscError(f"{address}: missing type tag string")
    tag_end = data.find(b"\0", index, end)
    if tag_end < 0:
        raise OscError(f"{address}: type tags are not terminated")
    tags = data[index + 1:tag_end]
    index = (tag_end // 4 + 1) * 4
    args: list[Any] = []
    arrays: list[list[Any]] = []
    for tag in tags:
        target = arrays[-1] if arrays else args
        if tag in _FIXED:
            kind = _FIXED[tag]
            if index + kind.size > end:
                raise OscError(f"{address}: argument runs past the end")
            target.append(kind.unpack_from(data, index)[0])
            index += kind.size
        elif tag in _CONSTANT:
            target.append(_CONSTANT[tag])
        elif tag in b"sS":
            text, index = _string(data, index, end)
            target.append(text)
        elif tag == ord("b"):
            if index + 4 > end:
                raise OscError(f"{address}: blob size runs past the end")
            (size,) = _INT.unpack_from(data, index)
            if size < 0 or index + 4 + size > end:
                raise OscError(f"{address}: bad blob size {size}")
            target.append(data[index + 4:index + 4 + size])
            index += 4 + (size + 3) // 4 * 4
        elif tag == ord("t"):
            if index + 8 > end:
                raise OscError(f"{address}: timetag runs past the end")
            target.append(Timetag(_timetag(*_TIMETAG.unpack_from(data, index))))
            index += 8
        elif tag in b"crm":  # a char, an RGBA colour, a MIDI message: four bytes each
            if index + 4 > end:
                raise OscError(f"{address}: argument runs past the end")
            raw = data[index:index + 4]
            target.append(chr(raw[3]) if tag == ord("c") else raw)
            index += 4
        elif tag == ord("["):
            arrays.append([])
        elif tag == ord("]"):
            if not arrays:
                raise OscError(f"{address}: ']' without '['")
            done = arrays.pop()
            (arrays[-1] if arrays else args).append(done)
        else:
            raise OscError(f"{address}: unknown type tag {chr(tag)!r}")
    if arrays:
        raise OscError(f"{address}: '[' without ']'")
    return Message(address, tuple(args), timetag)


def build(address: str, args: Iterable[Any] = ()) -> bytes:
    """One OSC message; bools become T/F, lists become OSC arrays."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def value_message(address: str, value: Any) -> bytes:
    """A param's value as OSC: a vector goes as its numbers ("ff"), as an XY pad sends it."""
    return build(address, value if isinstance(value, tuple) else (value,))

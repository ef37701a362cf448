"""OSC address patterns (`*`, `?`, `[a-z]`, `[!x]`, `{a,b}`) as compiled regular expressions."""

from __future__ import annotations

import re
from functools import lru_cache

WILDCARDS = frozenset("*?[]{}")


@lru_cache(maxsize=256)
def compile_pattern(address: str) -> re.Pattern[str] | None:
    """The regex matching what `address` matches, or None when the pattern is invalid.

    `*` and `?` never cross a "/", as the OSC 1.0 spec has it.
    """
    out, i = [], 0
    while i < len(address):
        c, i = address[i], i + 1
        if c in "[{":
            j = address.find("]" if c == "[" else "}", i)
            if j < 0:
                return None
            body, i = address[i:j], j + 1
            if c == "{":
                out.append("(?:" + "|".join(map(re.escape, body.split(","))) + ")")
                continue
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                return None
            inner = "".join("-" if ch == "-" and 0 < k < len(body) - 1 else re.escape(ch)
                            for k, ch in enumerate(body))
            out.append("[" + ("^/" if negate else "") + inner + "]")
        elif c in "]}":
            return None
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(c) or re.escape(c))
    try:
        return re.compile("".join(out))
    except re.error:  # a reversed range such as [z-a]
        return None

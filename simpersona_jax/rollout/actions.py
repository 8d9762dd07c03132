"""Strict parser for the agent's BrowserGym-style actions (never eval).

Grammar (whitespace allowed around tokens, strings in double or single quotes with backslash
escapes \\\\ \\" \\' \\n \\t):
  click("bid") | fill("bid", "text") | press("bid", "Key") | go_back() | stop()
A bid is a decimal number; Key is one of KEYS. Anything else raises ActionError with a message
that says what is wrong; the driver shows that message to the agent in the next observation.
"""

from __future__ import annotations

import dataclasses
import re

KEYS = frozenset(
    {
        "Enter",
        "Tab",
        "Escape",
        "Backspace",
        "Delete",
        "ArrowUp",
        "ArrowDown",
        "ArrowLeft",
        "ArrowRight",
        "Home",
        "End",
        "PageUp",
        "PageDown",
        "Space",
    }
)
ARITY = {"click": 1, "fill": 2, "press": 2, "go_back": 0, "stop": 0}
MAX_TEXT = 500
_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.DOTALL)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
_BID = re.compile(r"[0-9]{1,6}")


class ActionError(ValueError):
    """An action string that does not parse; the message is shown to the agent."""


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format_action(self.name, *self.args)


def _quote(s: str) -> str:
    return (
        '"'
        + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        + '"'
    )


def format_action(name: str, *args: str) -> str:
    """The canonical string of an action, e.g. format_action("fill", "3", "shoes")."""
    if name not in ARITY or len(args) != ARITY[name]:
        raise ActionError(f"{name}() takes {ARITY.get(name, '?')} arguments")
    return f"{name}({', '.join(_quote(a) for a in args)})"


def _strings(text: str) -> list[str]:
    """Parses a comma-separated list of quoted string literals."""
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            if out:
                raise ActionError("expected an argument after ','")
            return out
        quote = text[i]
        if quote not in "\"'":
            raise ActionError(f"arguments must be quoted strings, got {text[i : i + 20]!r}")
        i += 1
        buf = []
        while True:
            if i >= n:
                raise ActionError("unterminated string")
            ch = text[i]
            if ch == "\\":
                if i + 1 >= n or text[i + 1] not in _ESCAPES:
                    raise ActionError(f"bad escape {text[i : i + 2]!r}")
                buf.append(_ESCAPES[text[i + 1]])
                i += 2
            elif ch == quote:
                i += 1
                break
            else:
                buf.append(ch)
                i += 1
        out.append("".join(buf))
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return out
        if text[i] != ",":
            raise ActionError(f"expected ',' or ')' after argument, got {text[i : i + 20]!r}")
        i += 1


def parse_action(text: str) -> Action:
    if not isinstance(text, str):
        raise ActionError(f"action must be a string, got {type(text).__name__}")
    m = _CALL.fullmatch(text)
    if not m:
        raise ActionError(f'not an action call: {text[:80]!r}; expected e.g. click("12")')
    name, inner = m.group(1), m.group(2)
    if name not in ARITY:
        raise ActionError(f"unknown action {name!r}; allowed: {', '.join(ARITY)}")
    args = _strings(inner)
    if len(args) != ARITY[name]:
        raise ActionError(f"{name}() takes {ARITY[name]} argument(s), got {len(args)}")
    if args and not _BID.fullmatch(args[0]):
        raise ActionError(f'bid must be a number like "12", got {args[0][:20]!r}')
    if name == "press" and args[1] not in KEYS:
        raise ActionError(f"unsupported key {args[1][:20]!r}; allowed: {', '.join(sorted(KEYS))}")
    if name == "fill" and len(args[1]) > MAX_TEXT:
        raise ActionError(f"fill text longer than {MAX_TEXT} characters")
    return Action(name, tuple(args))

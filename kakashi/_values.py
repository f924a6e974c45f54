"""Turning arbitrary values into safe text: escaping, quoting, truncation, JSON encoding.

Every function here accepts anything and never raises an ``Exception``: a value whose
``__str__`` raises becomes a placeholder, a cycle becomes ``"<cycle>"``, a huge string is
cut with a marker. Control characters, line and paragraph separators, bidi overrides and
lone surrogates are escaped, so user data cannot start a new line, forge a record or send
terminal escapes (hostile input is inert).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

# Characters escaped in every format: C0 controls, DEL, C1 controls (0x9b is an 8-bit CSI),
# zero-width and bidi formatting characters, line/paragraph separators, BOM, lone surrogates.
_UNSAFE_CLASS = "\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
# logfmt values are quoted when they hold any of these (or an unsafe character), or are empty.
NEEDS_QUOTE = re.compile(f'[\\s"=\\\\{_UNSAFE_CLASS}]')
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:@/\-]")

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

RESERVED_KEYS = frozenset({"timestamp", "level", "logger", "message", "exception"})
RESERVED_PREFIX = "field_"
# A field named like a record key gets the prefix; so does one that already looks like such
# a renaming (``field_level``, ``field_field_level``), which keeps the renaming one-to-one:
# ``level`` and ``field_level`` passed together stay two keys.
_RENAMED = re.compile(f"(?:{RESERVED_PREFIX})*(?:{'|'.join(sorted(RESERVED_KEYS))})")
# Field names longer than this are cut, and end with a digest of the whole name so that two
# long names that differ only after the cut still differ.
KEY_LIMIT = 128

DEFAULT_MAX_LENGTH = 32768


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated {len(text) - limit} chars]"


def escape_text(text: str) -> str:
    """Escape the characters that could break a line or a terminal; nothing else."""
    return _UNSAFE.sub(_escape_char, text)


def safe_str(value: object, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """``str(value)``, or a placeholder if that raises; cut at ``limit``."""
    try:
        text = value if type(value) is str else str(value)
    except Exception as exc:  # noqa: BLE001 - any user __str__ may fail
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return truncate(text, limit)


def format_message(msg: object, args: tuple[Any, ...], limit: int) -> str:
    """Apply %-args to ``msg`` like stdlib logging does and cut the result (not escaped).

    A mismatch between the format and its arguments does not raise: the message is kept
    with the arguments appended, so nothing the caller passed is lost.
    """
    text = safe_str(msg, limit * 4)
    if args:
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]  # type: ignore[assignment]  # stdlib's "%(name)s" form
        try:
            text = text % args
        except Exception as exc:  # noqa: BLE001 - a bad format must not reach the caller
            shown = ", ".join(safe_str(a, 256) for a in (args if isinstance(args, tuple) else (args,)))
            text = f"{text} <format error {type(exc).__name__}; args: {shown}>"
    return truncate(text, limit)


# Field names whose values are never written: a name matches when it contains one
# of these, ignoring case.
DEFAULT_REDACT: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "set-cookie",
)
REDACTED = "[REDACTED]"
_redact: tuple[str, ...] = DEFAULT_REDACT
_redacted_cache: dict[str, bool] = {}
# Caches keyed by field name that must forget everything when the list changes.
name_caches: list[dict[str, str]] = []


def is_redacted(name: object) -> bool:
    """Whether a field (or header) called ``name`` has its value replaced by ``[REDACTED]``."""
    key = name if isinstance(name, str) else safe_str(name, 128)
    found = _redacted_cache.get(key)
    if found is None:
        lowered = key.lower().replace("_", "").replace("-", "")
        found = any(p.replace("_", "").replace("-", "") in lowered for p in _redact)
        if len(_redacted_cache) < 4096:
            _redacted_cache[key] = found
    return found


def set_redacted(names: tuple[str, ...]) -> None:
    """Replace the list of redacted names."""
    global _redact
    if names != _redact:
        _redact = names
        _redacted_cache.clear()
        for cache in name_caches:
            cache.clear()


def key_text(key: object) -> str:
    """A field name as JSON writes it (before escaping): the name as given, a record key
    renamed (see ``_RENAMED``), a very long name cut and marked with a digest. Different
    names give different texts."""
    text = key if key.__class__ is str else safe_str(key, sys.maxsize)
    if len(text) > KEY_LIMIT:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
        text = f"{text[:KEY_LIMIT]}...[{len(text)} chars {digest}]"
    if _RENAMED.fullmatch(text):
        text = RESERVED_PREFIX + text
    return text


def sanitize_key(key: object) -> str:
    """A field name that is safe in text and logfmt (characters outside a small set become
    ``_``); record keys are renamed as in JSON."""
    return _KEY_BAD.sub("_", key_text(key)) or "_"


# ---------------------------------------------------------------- call-time snapshots


class Frozen(str):
    """A mutable field value rendered as compact JSON when it was logged (async mode: the value at call time)."""

    __slots__ = ()


IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, complex, Frozen})


def freeze(fields: dict[str, Any], limit: int) -> dict[str, Any]:
    """``fields`` with every value that could change later replaced by its rendering now:
    containers as JSON (:class:`Frozen`), other objects as their ``str()``."""
    for value in fields.values():
        if type(value) not in IMMUTABLE:
            break
    else:
        return fields
    frozen: dict[str, Any] = {}
    for key, value in fields.items():
        cls = type(value)
        if cls in IMMUTABLE:
            frozen[key] = value
        elif cls in (dict, list, tuple):
            frozen[key] = Frozen(dumps(value, limit))
        else:
            frozen[key] = safe_str(value, limit)
    return frozen


# ---------------------------------------------------------------- logfmt / text values


def logfmt_str(text: str, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """A string as a logfmt value: bare when it is safe, else double-quoted and escaped
    (the quoted form is a JSON string literal, which is also valid logfmt)."""
    if len(text) > limit:
        text = truncate(text, limit)
    if text.isalnum() and text.isascii():  # ids, names, numbers: bare, without the regex
        return text
    if text and NEEDS_QUOTE.search(text) is None:
        return text
    return _json_quote(text)


def logfmt_value(value: object, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """Any value as a logfmt value (containers as compact JSON, then quoted)."""
    cls = type(value)
    if cls is str:
        return logfmt_str(value, limit)  # type: ignore[arg-type]
    if cls is int:
        text = int_text(value)  # type: ignore[arg-type]
        return text if text[0] != "<" else logfmt_str(text, limit)
    if cls is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if cls is float:
        return repr(value) if math.isfinite(value) else str(value)  # type: ignore[arg-type]
    if cls in (dict, list, tuple):
        return logfmt_str(dumps(value, limit), limit)
    return logfmt_str(safe_str(value, limit), limit)


# ---------------------------------------------------------------- JSON values

c_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def json_str(text: str, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """A string as a JSON string literal that is also safe on one physical line."""
    if len(text) > limit:
        text = truncate(text, limit)
    if text.isascii():  # the usual case, inline (_json_quote): O(1) in CPython
        out = c_encode_str(text)
        return out.replace("\x7f", "\\u007f") if "\x7f" in out else out
    return _json_quote(text)


def _json_quote(text: str) -> str:
    out = c_encode_str(text)
    if text.isascii():  # O(1) in CPython: only DEL can still need escaping
        return out.replace("\x7f", "\\u007f") if "\x7f" in out else out
    return _UNSAFE.sub(_json_escape_char, out)


def _default(value: object) -> object:
    # Enums as their value, everything else unknown as str(): what orjson does natively.
    if isinstance(value, Enum):
        return value.value
    return safe_str(value)


_std_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default).encode

# orjson spells negative exponents "1e-7" where Python's repr says "1e-07".
_SHORT_EXPONENT = re.compile(r"[0-9]e-[0-9]")

try:  # orjson is an optional speed-up ("kakashi[json]"); the output is the same either way
    import orjson as _orjson

    # datetimes and dataclasses go through _default (str()), as with the stdlib encoder.
    _ORJSON_OPTS = _orjson.OPT_NON_STR_KEYS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS

    def _fast_dumps(value: object) -> str:
        out = _orjson.dumps(value, default=_default, option=_ORJSON_OPTS).decode()
        # Rare: re-encode with the stdlib to keep Python's float spelling.
        return _std_encoder(value) if _SHORT_EXPONENT.search(out) else out

except ImportError:  # pragma: no cover - depends on the environment
    _fast_dumps = _std_encoder  # type: ignore[assignment]


MAX_DEPTH = 32


def _plain(value: object, depth: int, seen: set[int]) -> object:
    """Rebuild ``value`` from JSON types only, with placeholders for what cannot be encoded."""
    cls = type(value)
    if cls is int:
        text = int_text(value)  # type: ignore[arg-type]
        return value if text[0] != "<" else text
    if cls is str or cls is bool or value is None:
        return value
    if cls is float:
        return value if math.isfinite(value) else None  # type: ignore[arg-type]
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            return "<max depth>"
        if id(value) in seen:
            return "<cycle>"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                return {
                    (k if type(k) is str else safe_str(k, 256)): _plain(v, depth + 1, seen)
                    for k, v in list(value.items())
                }
            return [_plain(v, depth + 1, seen) for v in list(value)]
        finally:
            seen.discard(id(value))
    return safe_str(value)


def redact_nested(value: object, depth: int = 0) -> object:
    """``value`` with the values of secret-looking keys replaced at any depth; the
    same object when there is nothing to replace."""
    if depth >= MAX_DEPTH:
        return value
    cls = type(value)
    if cls is dict:
        out: dict[object, object] = {}
        changed = False
        for key, item in list(value.items()):  # type: ignore[attr-defined]
            if isinstance(key, str) and is_redacted(key):
                out[key], changed = REDACTED, True
            else:
                new = redact_nested(item, depth + 1)
                changed = changed or new is not item
                out[key] = new
        return out if changed else value
    if cls is list or cls is tuple:
        items = [redact_nested(item, depth + 1) for item in value]  # type: ignore[attr-defined]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value  # type: ignore[call-overload]
    return value


def int_text(value: int) -> str:
    """``str(value)``, or a placeholder for an int too long to print (Python refuses ints of
    more than 4,300 digits)."""
    try:
        return str(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def dumps(value: object, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """Compact JSON for any value; never raises; output longer than ``limit`` becomes a
    truncated JSON string. Non-finite floats become ``null`` (JSON has no NaN). Values under
    secret-looking keys are redacted at any depth."""
    value = redact_nested(value)
    try:
        out = _fast_dumps(value)
    except Exception:  # noqa: BLE001 - cycles, NaN, depth, odd keys: take the careful road
        try:
            out = _std_encoder(_plain(value, 0, set()))
        except Exception:  # noqa: BLE001
            out = c_encode_str(safe_str(value, limit))
    if len(out) > limit:
        return c_encode_str(truncate(out, limit))
    if not out.isascii() or "\x7f" in out:
        out = _UNSAFE.sub(_json_escape_char, out)
    return out


def json_value(value: object, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """Any value as a JSON value literal."""
    cls = type(value)
    if cls is str:
        return json_str(value, limit)  # type: ignore[arg-type]
    if cls is int:
        text = int_text(value)  # type: ignore[arg-type]
        return text if text[0] != "<" else json_str(text)
    if cls is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if cls is float:
        return repr(value) if math.isfinite(value) else "null"  # type: ignore[arg-type]
    if cls in (dict, list, tuple):
        return dumps(value, limit)
    if cls is Frozen:
        return str.__str__(value)
    return json_str(safe_str(value, limit), limit)

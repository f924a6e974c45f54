"""Record renderers: one line of text, logfmt or JSON per record.

A renderer is built once per (logger, level, format, bound fields) and called on every
enabled log call, so everything that does not depend on the call (the level name, the
logger name, the bound fields, the field-name spellings) is rendered here, ahead of time.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from . import _engine
from ._stats import counters, report
from ._values import (
    escape_text,
    format_message,
    json_str,
    json_value,
    logfmt_str,
    logfmt_value,
    safe_str,
    sanitize_key,
)

FORMATS = ("text", "json", "logfmt")

# A logger method: (msg, *args, exc_info=None, **fields) -> None
Emit = Callable[..., None]


def internal_error(exc: BaseException) -> None:
    """A record could not be rendered (a kakashi bug, never user data): count, report."""
    counters.add(dropped=1, internal_errors=1)
    report("internal", f"a record was dropped by an internal error: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- timestamps

# (start, end, rendered) of the current millisecond, and (second, rendered prefix). Each
# cell holds one tuple replaced whole, so racing threads read either the old or the new one.
_ms_cell: list[tuple[float, float, str]] = [(0.0, 0.0, "")]
_sec_cell: list[tuple[int, str]] = [(-1, "")]


def _refresh_timestamp(now: float) -> tuple[float, float, str]:
    ms = int(now * 1000)
    sec, frac = divmod(ms, 1000)
    cached = _sec_cell[0]
    if cached[0] != sec:
        cached = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _sec_cell[0] = cached
    entry = (ms / 1000, (ms + 1) / 1000, f"{cached[1]}.{frac:03d}Z")
    _ms_cell[0] = entry
    return entry


def format_timestamp(now: float) -> str:
    """``time.time()`` as UTC ISO-8601 with milliseconds: ``2026-11-27T06:16:12.345Z``."""
    entry = _ms_cell[0]
    return entry[2] if entry[0] <= now < entry[1] else _refresh_timestamp(now)[2]


# ---------------------------------------------------------------- exceptions


def exc_triple(exc_info: object) -> tuple[type[BaseException], BaseException, Any] | None:
    """Normalise ``exc_info`` (True, an exception, or a sys.exc_info() tuple)."""
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return type(exc_info), exc_info, exc_info.__traceback__
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info
    return None


def describe_exception(exc_info: object) -> tuple[str, str, str] | None:
    """(type name, message, full traceback with chained causes), or None when there is none."""
    triple = exc_triple(exc_info)
    if triple is None:
        return None
    etype, value, tb = triple
    try:
        text = "".join(traceback.format_exception(etype, value, tb)).rstrip("\n")
    except Exception as exc:  # noqa: BLE001 - a broken __str__ inside the chain
        text = f"<traceback unavailable: {type(exc).__name__}>"
    return etype.__qualname__, safe_str(value), text


# ---------------------------------------------------------------- field names

_KEY_CACHE_LIMIT = 4096


def _key_renderer(spell: Callable[[str], str]) -> tuple[dict[str, str], Callable[[str], str]]:
    """Memoise the rendered form of a field name (names repeat; values do not). Returns the
    cache, which emitters index directly, and the function that fills it."""
    cache: dict[str, str] = {}

    def render_key(key: str) -> str:
        out = cache.get(key)
        if out is None:
            out = spell(sanitize_key(key))
            if len(cache) < _KEY_CACHE_LIMIT:
                cache[key] = out
        return out

    return cache, render_key


_kv_keys, _kv_key = _key_renderer(lambda k: f" {k}=")
_json_keys, _json_key = _key_renderer(lambda k: f",{json_str(k)}:")


def _merge(bound: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    # Call fields win over bound fields of the same name; bound order is kept.
    merged = {k: v for k, v in bound.items() if k not in fields}
    merged.update(fields)
    return merged


# ---------------------------------------------------------------- emitters


def _describe_kv(exc_info: object, limit: int) -> str:
    described = describe_exception(exc_info)
    return "" if described is None else " exception=" + logfmt_str(described[2], limit * 4)


def _describe_json(exc_info: object, limit: int) -> str:
    described = describe_exception(exc_info)
    if described is None:
        return ""
    etype, emsg, tb = described
    return (
        f',"exception":{{"type":{json_str(etype)},"message":{json_str(emsg, limit)},'
        f'"traceback":{json_str(tb, limit * 4)}}}'
    )


def make_emitter(
    fmt: str,
    level_name: str,
    logger_name: str,
    bound: Mapping[str, Any],
    limit: int,
    threshold: int,
    tls: Any = None,
    clock: Callable[[], float] | None = None,
) -> Emit:
    """Build a logger method for one logger and level: render the call into one line in
    the calling thread and append it to the thread's batch, which is written once it holds
    ``threshold`` lines (1 for ERROR and above: written before the call returns).
    ``tls`` replaces the engine's thread-local storage (anything with a ``lines`` list) and
    ``clock`` the wall clock (the async worker renders records logged earlier).

    The rendering is written out inline in the returned closure (no helper calls on the
    common path): this function runs on every enabled log call.
    """
    if fmt == "json":
        return _json_emitter(level_name, logger_name, bound, limit, threshold, tls or _engine._tls, clock or time.time)
    return _kv_emitter(
        fmt == "logfmt", level_name, logger_name, bound, limit, threshold, tls or _engine._tls, clock or time.time
    )


# Rendered forms of short string values, per format: values repeat far more than they
# vary (methods, paths, hosts, user names). Bounded; cleared when full.
_VALUE_CACHE_LIMIT = 1024
_VALUE_CACHE_MAX_LEN = 64  # max_value_length is at least this, so cached values are never cut
_kv_values: dict[str, str] = {}
_json_values: dict[str, str] = {}


def _kv_str(value: str, limit: int) -> str:
    out = logfmt_str(value, limit)
    if len(value) <= _VALUE_CACHE_MAX_LEN:
        if len(_kv_values) >= _VALUE_CACHE_LIMIT:
            _kv_values.clear()
        _kv_values[value] = out
    return out


def _json_str_cached(value: str, limit: int) -> str:
    out = json_str(value, limit)
    if len(value) <= _VALUE_CACHE_MAX_LEN:
        if len(_json_values) >= _VALUE_CACHE_LIMIT:
            _json_values.clear()
        _json_values[value] = out
    return out


def _kv_emitter(
    logfmt: bool,
    level_name: str,
    logger_name: str,
    bound: Mapping[str, Any],
    limit: int,
    threshold: int,
    tls: Any,
    clock: Callable[[], float],
) -> Emit:
    """text: ``<ts> LEVEL logger: message k=v ...``; logfmt: ``timestamp=<ts> level=LEVEL ...``."""
    if logfmt:
        head_pre = "timestamp="
        head = f" level={level_name} logger={logfmt_str(logger_name)} message="
    else:
        head_pre = ""
        head = f" {level_name} {escape_text(logger_name)}: "
    bound_text = "".join(_kv_key(k) + logfmt_value(v, limit) for k, v in bound.items())
    bound_keys = frozenset(bound)
    ms_cell = _ms_cell
    keys, values = _kv_keys, _kv_values
    new_batch, flush_current = _engine._new_batch, _engine.flush_current
    # (message as passed, message as rendered) for the last call without %-args: most
    # calls pass the same literal again, so the checks and escaping are done once.
    last_msg: list[tuple[object, str]] = [(None, "")]

    def emit(msg: object, /, *args: Any, exc_info: object = None, **fields: Any) -> None:
        try:
            now = clock()
            stamp = ms_cell[0]
            ts = stamp[2] if stamp[0] <= now < stamp[1] else _refresh_timestamp(now)[2]
            cached = last_msg[0]
            if cached[0] is msg and not args:
                text = cached[1]
            else:
                text = format_message(msg, args, limit)
                text = logfmt_str(text, limit) if logfmt else escape_text(text)
                if not args and msg.__class__ is str:
                    last_msg[0] = (msg, text)
            extra = bound_text
            if fields:
                if bound_keys and not bound_keys.isdisjoint(fields):
                    fields, extra = _merge(bound, fields), ""
                for key, value in fields.items():
                    cls = value.__class__
                    if cls is str:
                        rendered = values.get(value)
                        value = _kv_str(value, limit) if rendered is None else rendered
                    elif cls is not int:
                        value = logfmt_value(value, limit)
                    try:
                        extra = f"{extra}{keys[key]}{value}"
                    except KeyError:
                        extra = f"{extra}{_kv_key(key)}{value}"
            if exc_info:
                extra += _describe_kv(exc_info, limit)
            line = f"{head_pre}{ts}{head}{text}{extra}\n"
            # The batching tail (the same in both emitters, inline to save a call).
            try:
                lines = tls.lines
            except AttributeError:
                lines = new_batch()
            lines.append(line)
            if len(lines) >= threshold:
                flush_current()
        except Exception as exc:  # noqa: BLE001 - P5: logging never raises into the caller
            internal_error(exc)

    return emit


def _json_emitter(
    level_name: str,
    logger_name: str,
    bound: Mapping[str, Any],
    limit: int,
    threshold: int,
    tls: Any,
    clock: Callable[[], float],
) -> Emit:
    """``{"timestamp":..,"level":..,"logger":..,"message":..,<fields>,"exception":{..}}``."""
    head = f'","level":"{level_name}","logger":{json_str(logger_name)},"message":'
    bound_text = "".join(_json_key(k) + json_value(v, limit) for k, v in bound.items())
    bound_keys = frozenset(bound)
    ms_cell = _ms_cell
    keys, values = _json_keys, _json_values
    new_batch, flush_current = _engine._new_batch, _engine.flush_current
    last_msg: list[tuple[object, str]] = [(None, "")]

    def emit(msg: object, /, *args: Any, exc_info: object = None, **fields: Any) -> None:
        try:
            now = clock()
            stamp = ms_cell[0]
            ts = stamp[2] if stamp[0] <= now < stamp[1] else _refresh_timestamp(now)[2]
            cached = last_msg[0]
            if cached[0] is msg and not args:
                text = cached[1]
            else:
                text = json_str(format_message(msg, args, limit), limit)
                if not args and msg.__class__ is str:
                    last_msg[0] = (msg, text)
            extra = bound_text
            if fields:
                if bound_keys and not bound_keys.isdisjoint(fields):
                    fields, extra = _merge(bound, fields), ""
                for key, value in fields.items():
                    cls = value.__class__
                    if cls is str:
                        rendered = values.get(value)
                        value = _json_str_cached(value, limit) if rendered is None else rendered
                    elif cls is not int:
                        value = json_value(value, limit)
                    try:
                        extra = f"{extra}{keys[key]}{value}"
                    except KeyError:
                        extra = f"{extra}{_json_key(key)}{value}"
            if exc_info:
                extra += _describe_json(exc_info, limit)
            line = f'{{"timestamp":"{ts}{head}{text}{extra}}}\n'
            try:
                lines = tls.lines
            except AttributeError:
                lines = new_batch()
            lines.append(line)
            if len(lines) >= threshold:
                flush_current()
        except Exception as exc:  # noqa: BLE001 - P5: logging never raises into the caller
            internal_error(exc)

    return emit


def render_line(fmt: str, level_name: str, logger_name: str, message: str) -> str:
    """Render one record to a line without batching it (kakashi's own notices)."""
    out = SimpleNamespace(lines=[])
    make_emitter(fmt, level_name, logger_name, {}, 1 << 20, 1 << 30, out)(message)
    return "".join(out.lines)

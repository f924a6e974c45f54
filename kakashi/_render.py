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
from ._context import Context
from ._context import current as current_context
from ._stats import counters, report
from ._values import (
    REDACTED,
    escape_text,
    format_message,
    is_redacted,
    json_str,
    json_value,
    key_text,
    logfmt_str,
    logfmt_value,
    name_caches,
    safe_str,
    sanitize_key,
    truncate,
)

FORMATS = ("text", "json", "logfmt", "console")

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


def _key_renderer(
    spell: Callable[[str], str], name: Callable[[object], str] = sanitize_key
) -> tuple[dict[str, str], Callable[[str], str]]:
    """Memoise the rendered form of a field name (names repeat; values do not). Returns the
    cache, which emitters index directly, and the function that fills it."""
    cache: dict[str, str] = {}
    name_caches.append(cache)

    def render_key(key: str) -> str:
        out = cache.get(key)
        if out is None:
            out = spell(name(key))
            # Redacted names stay out of the cache, so the hot path's lookup misses and
            # takes the slow path, which writes [REDACTED] instead of the value.
            if len(cache) < _KEY_CACHE_LIMIT and not is_redacted(key):
                cache[key] = out
        return out

    return cache, render_key


def _merge(bound: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    # Call fields win over bound fields of the same name; bound order is kept.
    merged = {k: v for k, v in bound.items() if k not in fields}
    merged.update(fields)
    return merged


# ---------------------------------------------------------------- emitters


def make_emitter(
    fmt: str,
    level_name: str,
    logger_name: str,
    bound: Mapping[str, Any],
    limit: int,
    threshold: int,
    route: _engine.Route | None = None,
    *,
    tls: Any = None,
    clock: Callable[[], float] | None = None,
    fixed: tuple[str, ...] | None = None,
) -> Emit:
    """Build a logger method for one logger and level: render the call into one line in
    the calling thread and append it to the thread's batch, which is written once it holds
    ``threshold`` lines (1 for ERROR and above: written before the call returns).
    Without a ``route``, lines go to ``tls.lines`` (anything with a ``lines`` list) and are
    never flushed by the emitter: the async worker and kakashi's own notices render that
    way, the worker with ``clock`` giving each record's own time.

    With ``fixed`` (field names), the method is called as ``emit(msg, *values)``, one value
    per name, and writes what ``emit(msg, **dict(zip(fixed, values)))`` would.
    """
    spec = _SPECS[fmt]
    if fmt == "json":
        head_pre = '{"timestamp":"'
        head = f'","level":"{level_name}","logger":{json_str(logger_name)},"message":'
        tail = "}\n"
    elif fmt == "logfmt":
        head_pre = "timestamp="
        head = f" level={level_name} logger={logfmt_str(logger_name)} message="
        tail = "\n"
    elif fmt.startswith("console"):
        # Aligned for reading: the level padded to 8 columns, coloured on a terminal.
        padding = " " * max(0, 8 - len(level_name))
        shown = _colour(level_name) if fmt == "console-color" else level_name
        head_pre = ""
        head = f" {shown}{padding} {escape_text(logger_name)}: "
        tail = "\n"
    else:
        head_pre = ""
        head = f" {level_name} {escape_text(logger_name)}: "
        tail = "\n"
    if route is not None:
        tls, new_batch, flush_current = route.tls, route.new_batch, route.flush_current
    else:
        new_batch = flush_current = _unbatched
        threshold = 1 << 62
    return _emitter(
        spec,
        head_pre,
        head,
        tail,
        bound,
        limit,
        threshold,
        tls,
        new_batch,
        flush_current,
        clock or time.time,
        span_ids if route is not None else None,
        fixed,
    )


# Set by configure(): returns the current span's (trace_id, span_id), or None (_trace.py).
span_ids: Callable[[], tuple[str, str] | None] | None = None


def _unbatched(wait: bool = True) -> Any:
    raise RuntimeError("an emitter without a route has no batch to flush")


class _Spec:
    """How one format spells messages, field names, values and exceptions."""

    def __init__(
        self,
        name: str,
        message: Callable[[str, int], str],
        key: Callable[[str], str],
        str_value: Callable[[str, int], str],
        value: Callable[[object, int], str],
        exception: Callable[[object, int], str],
    ) -> None:
        self.name, self.message, self.exception = name, message, exception
        self.str_value, self.value = str_value, value
        self.redacted = str_value(REDACTED, 64)
        self.keys, self.key = _key_renderer(key, key_text if name == "json" else sanitize_key)
        self.values: dict[str, str] = {}  # str value -> rendered, bounded (see _cached_str)

    def fields(self, fields: Mapping[str, Any], limit: int) -> str:
        """Render fields off the per-call path (bound fields, a context once per request,
        merges), with the same caches as the emitters."""
        keys, values = self.keys, self.values
        out = ""
        for key, value in fields.items():
            try:
                rendered_key = keys[key]  # a cached name is never a redacted one
            except KeyError:
                rendered_key = self.key(key)
                if is_redacted(key):
                    out += rendered_key + self.redacted
                    continue
            if value.__class__ is str:
                rendered = values.get(value)  # (a miss is common here: no KeyError)
                if rendered is not None:
                    value = rendered
                elif len(value) > _VALUE_CACHE_MAX_LEN:
                    value = self.str_value(value, limit)
                else:  # (_cached_str, inline: a context brings a new request id each time)
                    rendered = self.str_value(value, limit)
                    if len(values) >= _VALUE_CACHE_LIMIT:
                        values.clear()
                    values[value] = value = rendered
            else:
                value = self.value(value, limit)
            out = f"{out}{rendered_key}{value}"
        return out


def _emitter(
    spec: _Spec,
    head_pre: str,
    head: str,
    tail: str,
    bound: Mapping[str, Any],
    limit: int,
    threshold: int,
    tls: Any,
    new_batch: Callable[[], list[str]],
    flush_current: Callable[[bool], None],
    clock: Callable[[], float],
    trace: Callable[[], tuple[str, str] | None] | None,
    fixed: tuple[str, ...] | None = None,
) -> Emit:
    bound_text = spec.fields(bound, limit)
    bound_keys = frozenset(bound)
    render_message, describe = spec.message, spec.exception
    keys, key_slow, values, other, redacted = spec.keys, spec.key, spec.values, spec.value, spec.redacted
    name = spec.name
    ms_cell = _ms_cell
    context_now = current_context
    trace_key, span_key, quote = spec.key("trace_id"), spec.key("span_id"), spec.str_value
    # A full batch does not wait for a busy writer; ERROR+ and write-through (threshold 1) do.
    wait = threshold <= 1
    # (message, message as rendered) for the last str message without %-args: most calls
    # pass the same text again, so the checks and escaping are done once.
    last_msg: list[tuple[object, str]] = [(None, "")]

    def emit(msg: object, /, *args: Any, exc_info: object = None, **fields: Any) -> None:
        try:
            now = clock()
            stamp = ms_cell[0]
            ts = stamp[2] if stamp[0] <= now < stamp[1] else _refresh_timestamp(now)[2]
            if msg.__class__ is str and not args:
                cached = last_msg[0]
                if cached[0] == msg:  # (str == str: no user code runs)
                    text = cached[1]
                elif len(msg) <= limit:
                    text = render_message(msg, limit)
                    last_msg[0] = (msg, text)
                else:
                    text = render_message(format_message(msg, args, limit), limit)
            else:
                text = render_message(format_message(msg, args, limit), limit)
            ctx = context_now()
            if ctx is None:
                extra = bound_text
            else:
                names = ctx.fields.keys()
                if (fields and not names.isdisjoint(fields.keys())) or (
                    bound_keys and not names.isdisjoint(bound_keys)
                ):
                    extra = _context_text(spec, ctx, limit, bound_keys, fields) + bound_text
                else:  # the context's rendering, made by the first line logged in it
                    rendered = ctx.rendered.get(name)
                    if rendered is None:
                        rendered = ctx.rendered[name] = spec.fields(ctx.fields, limit)
                    extra = rendered
                    if bound_text:
                        extra += bound_text
            if trace is not None:
                ids = trace()
                if ids is not None:
                    extra = f"{trace_key}{quote(ids[0], limit)}{span_key}{quote(ids[1], limit)}{extra}"
            if fields:
                if bound_keys and not bound_keys.isdisjoint(fields):
                    extra = extra[: len(extra) - len(bound_text)] + spec.fields(_merge(bound, fields), limit)
                    fields = {}
                for key, value in fields.items():
                    cls = value.__class__
                    if cls is str:
                        rendered = values.get(value)
                        value = _cached_str(spec, value, limit) if rendered is None else rendered
                    elif cls is float and value - value == 0.0:  # finite (nan and inf give nan)
                        value = repr(value)
                    elif cls is not int:  # (an int is printed by the f-string below)
                        value = other(value, limit)
                    try:
                        extra = f"{extra}{keys[key]}{value}"
                    except KeyError:  # a new or a redacted name
                        if is_redacted(key):
                            value = redacted
                        elif cls is int:
                            value = other(value, limit)
                        extra = f"{extra}{key_slow(key)}{value}"
                    except ValueError:  # an int too long to print: str() refuses it
                        extra = f"{extra}{keys[key]}{other(value, limit)}"
            if exc_info:
                extra += describe(exc_info, limit)
            line = f"{head_pre}{ts}{head}{text}{extra}{tail}"
            try:
                lines = tls.lines
            except AttributeError:
                lines = new_batch()
            lines.append(line)
            if len(lines) >= threshold:
                flush_current(wait)
        except Exception as exc:  # noqa: BLE001 - logging never raises into the caller
            internal_error(exc)

    if fixed is None:
        return emit

    if fixed is None:
        return emit
    if (
        not fixed
        or len(set(fixed)) != len(fixed)
        or not bound_keys.isdisjoint(fixed)
        or any(is_redacted(k) for k in fixed)
    ):
        return by_name(emit, fixed)
    env = {
        "emit": emit,
        "names": fixed,
        "name_set": frozenset(fixed),
        "keys": tuple(key_slow(k) for k in fixed),
        "clock": clock,
        "ms_cell": ms_cell,
        "refresh_timestamp": _refresh_timestamp,
        "last_msg": last_msg,
        "limit": limit,
        "render_message": render_message,
        "format_message": format_message,
        "context_now": context_now,
        "bound_text": bound_text,
        "bound_keys": bound_keys,
        "name": name,
        "spec": spec,
        "trace": trace,
        "trace_key": trace_key,
        "span_key": span_key,
        "quote": quote,
        "values": values,
        "cached_str": _cached_str,
        "other": other,
        "internal_error": internal_error,
        "tls": tls,
        "new_batch": new_batch,
        "threshold": threshold,
        "flush_current": flush_current,
        "wait": wait,
        "line_start": head_pre,
        "head": head,
        "tail": tail,
    }
    return _fixed_emitter(len(fixed), env)


# The method for fixed field names (Logger.prepare), called with the values positionally:
# ``emit`` without the keyword dict, the name lookups and the per-name checks, and with
# the per-value work unrolled (so the source is generated, once per number of names).
# What it leaves out (a name shadowed by the context, an int too long to print) it hands
# to ``emit``, so the two always write the same line.
_FIXED_TEMPLATE = """
def emit_fixed(msg, {params}, /):
    try:
        now = clock()
        stamp = ms_cell[0]
        ts = stamp[2] if stamp[0] <= now < stamp[1] else refresh_timestamp(now)[2]
        if msg.__class__ is str:
            cached = last_msg[0]
            if cached[0] == msg:
                text = cached[1]
            elif len(msg) <= limit:
                text = render_message(msg, limit)
                last_msg[0] = (msg, text)
            else:
                text = render_message(format_message(msg, (), limit), limit)
        else:
            text = render_message(format_message(msg, (), limit), limit)
        ctx = context_now()
        if ctx is None:
            extra = bound_text
        else:
            ctx_names = ctx.fields.keys()
            if ctx_names.isdisjoint(name_set) and (not bound_keys or ctx_names.isdisjoint(bound_keys)):
                extra = ctx.rendered.get(name)
                if extra is None:
                    extra = ctx.rendered[name] = spec.fields(ctx.fields, limit)
                if bound_text:
                    extra += bound_text
            elif ctx_names <= name_set:  # the call gives every context field again: it wins
                extra = bound_text
            else:
                emit(msg, **dict(zip(names, ({params},))))
                return
        if trace is not None:
            ids = trace()
            if ids is not None:
                extra = f"{{trace_key}}{{quote(ids[0], limit)}}{{span_key}}{{quote(ids[1], limit)}}{{extra}}"
{values}
        line = f"{{line_start}}{{ts}}{{head}}{{text}}{{extra}}{line}{{tail}}"  # ValueError: an int too long to print
    except ValueError:
        emit(msg, **dict(zip(names, ({params},))))
        return
    except Exception as exc:  # logging never raises into the caller
        internal_error(exc)
        return
    try:
        try:
            lines = tls.lines
        except AttributeError:
            lines = new_batch()
        lines.append(line)
        if len(lines) >= threshold:
            flush_current(wait)
    except Exception as exc:
        internal_error(exc)
"""
_FIXED_VALUE = """
        cls = v{i}.__class__
        if cls is str:
            r{i} = values.get(v{i})
            if r{i} is None:
                r{i} = cached_str(spec, v{i}, limit)
        elif cls is int:
            r{i} = v{i}
        elif cls is float and v{i} - v{i} == 0.0:  # finite (nan and inf give nan)
            r{i} = repr(v{i})
        else:
            r{i} = other(v{i}, limit)"""
_fixed_code: dict[int, Any] = {}


def _fixed_emitter(count: int, env: dict[str, Any]) -> Emit:
    code = _fixed_code.get(count)
    if code is None:
        source = _FIXED_TEMPLATE.format(
            params=", ".join(f"v{i}" for i in range(count)),
            values="".join(_FIXED_VALUE.format(i=i) for i in range(count)),
            line="".join(f"{{keys[{i}]}}{{r{i}}}" for i in range(count)),
        )
        code = _fixed_code[count] = compile(source, f"<kakashi fixed emitter, {count} fields>", "exec")
    namespace = dict(env, repr=repr, str=str, int=int, float=float, dict=dict, zip=zip, Exception=Exception)
    exec(code, namespace)
    return namespace["emit_fixed"]  # type: ignore[no-any-return]


def by_name(emit: Emit, names: tuple[str, ...]) -> Emit:
    """``emit`` called as ``(msg, *values)``, one value for each of ``names``."""
    count = len(names)

    def emit_by_name(msg: object, /, *vals: Any) -> None:
        if len(vals) != count:
            raise arity_error(names, vals)
        emit(msg, **dict(zip(names, vals, strict=True)))

    return emit_by_name


def arity_error(names: tuple[str, ...], values: tuple[Any, ...]) -> TypeError:
    """The error for a prepared method given a wrong number of values."""
    return TypeError(f"expected {len(names)} values (for {', '.join(names)}), got {len(values)}")


def _context_text(spec: _Spec, ctx: Context, limit: int, bound_keys: frozenset[str], fields: dict[str, Any]) -> str:
    """The context's fields without the keys that bound or call fields override (the
    emitter renders an unshadowed context once per format and caches it on the context)."""
    shadowed = bound_keys | fields.keys()
    return spec.fields({k: v for k, v in ctx.fields.items() if k not in shadowed}, limit)


# Rendered forms of short string values, per format: values repeat far more than they
# vary (methods, paths, hosts, user names). Bounded; cleared when full.
_VALUE_CACHE_LIMIT = 1024
_BIG_INT = 10**4000  # str() refuses ints of more than 4,300 digits
_VALUE_CACHE_MAX_LEN = 64  # max_value_length is at least this, so cached values are never cut


def _cached_str(spec: _Spec, value: str, limit: int) -> str:
    out = spec.str_value(value, limit)
    if len(value) <= _VALUE_CACHE_MAX_LEN:
        cache = spec.values
        if len(cache) >= _VALUE_CACHE_LIMIT:
            cache.clear()
        cache[value] = out
    return out


def _kv_exception(exc_info: object, limit: int) -> str:
    described = describe_exception(exc_info)
    return "" if described is None else " exception=" + logfmt_str(described[2], limit * 4)


def _json_exception(exc_info: object, limit: int) -> str:
    described = describe_exception(exc_info)
    if described is None:
        return ""
    etype, emsg, tb = described
    return (
        f',"exception":{{"type":{json_str(etype)},"message":{json_str(emsg, limit)},'
        f'"traceback":{json_str(tb, limit * 4)}}}'
    )


def _text_message(text: str, limit: int) -> str:
    return escape_text(text)


_COLOURS = {
    "DEBUG": "\x1b[2;36m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}


def _colour(level_name: str) -> str:
    code = _COLOURS.get(level_name)
    return f"{code}{level_name}\x1b[0m" if code else level_name


def _console_exception(exc_info: object, limit: int) -> str:
    """The traceback on the lines after the record, each indented by four spaces (and
    escaped), so it reads as usual and no line of it can pass for a record."""
    described = describe_exception(exc_info)
    if described is None:
        return ""
    return "".join(f"\n    {escape_text(line)}" for line in truncate(described[2], limit * 4).splitlines())


_SPECS = {
    "text": _Spec("text", _text_message, lambda k: f" {k}=", logfmt_str, logfmt_value, _kv_exception),
    "logfmt": _Spec("logfmt", logfmt_str, lambda k: f" {k}=", logfmt_str, logfmt_value, _kv_exception),
    "json": _Spec("json", json_str, lambda k: f",{json_str(k)}:", json_str, json_value, _json_exception),
    "console": _Spec("console", _text_message, lambda k: f" {k}=", logfmt_str, logfmt_value, _console_exception),
}
_SPECS["console-color"] = _SPECS["console"]


def render_line(fmt: str, level_name: str, logger_name: str, message: str) -> str:
    """Render one record to a line without batching it (kakashi's own notices)."""
    out = SimpleNamespace(lines=[])
    make_emitter(fmt, level_name, logger_name, {}, 1 << 20, 1, tls=out)(message)
    return "".join(out.lines)

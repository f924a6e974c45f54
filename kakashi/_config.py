"""``configure()``: validated settings, environment defaults, and applying them live."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import _engine, _render
from ._async import EXIT_LIMIT, EXIT_STALL, OVERFLOW_POLICIES, async_queue
from ._levels import INFO, parse_level
from ._render import FORMATS, render_line
from ._sinks import Sink, make_sink
from ._stats import report
from ._trace import installed as otel_installed
from ._trace import load_span_ids
from ._values import DEFAULT_MAX_LENGTH, DEFAULT_REDACT, set_redacted

ENV_LEVEL = "KAKASHI_LEVEL"
ENV_FORMAT = "KAKASHI_FORMAT"
ENV_SINK = "KAKASHI_SINK"


@dataclass(frozen=True)
class Config:
    """The settings in force. Loggers are rebuilt from it whenever it changes."""

    level: int = INFO
    format: str = "text"
    batch_size: int = 100
    flush_interval: float = 1.0
    max_value_length: int = DEFAULT_MAX_LENGTH
    mode: str = "sync"
    queue_size: int = 10_000
    overflow: str = "block"
    max_latency: float = 0.1
    redact: tuple[str, ...] = DEFAULT_REDACT
    trace_ids: bool = False  # resolved: "auto" becomes whether OpenTelemetry is installed


MODES = ("sync", "async")


_current: Config | None = None
_lock = threading.RLock()
# Called with the new Config after every change (the logger registry rebuilds its loggers).
_listeners: list[Callable[[Config], None]] = []
# Set at interpreter exit: every record is written before its call returns from then on,
# because no flush is coming after the exit hook.
_exiting = False


def _check_format(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"format must be a str, not {type(value).__name__} ({value!r}); valid formats: {', '.join(FORMATS)}"
        )
    fmt = value.strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {value!r}; valid formats: {', '.join(FORMATS)}")
    return fmt


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__} ({value!r})")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__} ({value!r}); valid: {', '.join(choices)}")
    chosen = value.strip().lower()  # ("ASYNC" as "async", as format= and level= do)
    if chosen not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
    return chosen


def configure(
    *,
    level: int | str = "INFO",
    format: str = "text",  # noqa: A002 - the documented option name
    sink: object = None,
    sinks: list[object] | None = None,
    batch_size: int = 100,
    flush_interval: float = 1.0,
    max_value_length: int = DEFAULT_MAX_LENGTH,
    mode: str = "sync",
    queue_size: int = 10_000,
    overflow: str = "block",
    max_latency: float = 0.1,
    redact: tuple[str, ...] | list[str] = DEFAULT_REDACT,
    trace_ids: bool | str = "auto",
) -> None:
    """Set the whole configuration; takes effect at once for every existing logger.

    Each call replaces the previous configuration (options not given take their defaults).
    Everything is validated before anything changes, so a bad value leaves the old
    configuration in place.

    Args:
        level: the default minimum level of loggers: a name (``"DEBUG"`` ... ``"CRITICAL"``)
            or an int. Loggers given their own level keep it.
        format: ``"text"``, ``"json"``, ``"logfmt"``, or ``"console"`` (for people at a
            terminal: aligned, the level coloured when the stream is a terminal, tracebacks
            on indented lines after the record).
        sink: ``"stderr"`` (the default), ``"stdout"``, a file path (``str`` or
            ``os.PathLike``, appended to, opened here), an object with ``write(str)``, a
            callable taking a string of whole lines, or a :class:`kakashi.Sink`.
        sinks: several destinations instead of ``sink``: each item is what ``sink`` takes,
            or a dict ``{"sink": ..., "format": ..., "level": ...}`` giving that destination
            its own format and minimum level.
        batch_size: lines a thread collects before writing them with one call (>= 1).
        flush_interval: seconds a line may wait in a batch at most (> 0).
        max_value_length: longer messages and field values are cut, with a marker (>= 64).
        mode: ``"sync"`` (each thread batches and writes) or ``"async"`` (every logger hands
            its records to one background worker; see :func:`get_async_logger`).
        queue_size: records the async queue holds at most (>= 1).
        overflow: what a full async queue does: ``"block"`` (wait, the default),
            ``"drop_newest"`` or ``"drop_oldest"``; drops are counted and announced, and
            ERROR and above are never dropped.
        max_latency: seconds the async worker waits to fill a batch (> 0).
        redact: field names whose values are written as ``[REDACTED]``: a name matches when
            it contains one of these, ignoring case (``"token"`` redacts ``access_token``).
            Extend the default with ``kakashi.DEFAULT_REDACT + ("ssn",)``; ``()`` turns it off.
        trace_ids: add ``trace_id`` and ``span_id`` of the recording OpenTelemetry span to
            every record: ``"auto"`` (when ``opentelemetry-api`` is installed), ``True``
            (it must be) or ``False``.

    Raises:
        ValueError: a bad value (named in the message with the valid choices).
        TypeError: a value of the wrong type.
        OSError: a path that cannot be opened for appending.
    """
    new = Config(
        level=parse_level(level),
        format=_check_format(format),
        batch_size=_check_int("batch_size", batch_size, 1),
        flush_interval=_check_seconds("flush_interval", flush_interval),
        max_value_length=_check_int("max_value_length", max_value_length, 64),
        mode=_check_choice("mode", mode, MODES),
        queue_size=_check_int("queue_size", queue_size, 1),
        overflow=_check_choice("overflow", overflow, OVERFLOW_POLICIES),
        max_latency=_check_seconds("max_latency", max_latency),
        redact=_check_redact(redact),
        trace_ids=_check_trace_ids(trace_ids),
    )
    if sink is not None and sinks is not None:
        raise ValueError("give sink= or sinks=, not both")
    specs = [sink if sink is not None else "stderr"] if sinks is None else _check_sinks(sinks)
    routes: list[_engine.Route] = []
    try:
        for spec in specs:  # opening files here: a bad path fails now, not at the first log call
            routes.append(_make_route(spec, new.format))
    except BaseException:
        for route in routes:
            _close_quietly(route.sink)
        raise
    _apply(new, routes)


def _check_sinks(sinks: object) -> list[object]:
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, (list, tuple)):
        raise TypeError(f"sinks must be a list of sinks, not {type(sinks).__name__}")
    if not sinks:
        raise ValueError("sinks must not be empty (give at least one sink)")
    return list(sinks)


_ROUTE_KEYS = frozenset({"sink", "format", "level"})


def _make_route(spec: object, default_format: str) -> _engine.Route:
    if isinstance(spec, dict):
        unknown = set(spec) - _ROUTE_KEYS
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(map(repr, sorted(unknown)))} in sink {spec!r}; "
                "valid keys: sink, format, level"
            )
        if "sink" not in spec:
            raise ValueError(f"sink {spec!r} has no 'sink' key")
        fmt = _check_format(spec["format"]) if "format" in spec else None
        level = parse_level(spec["level"]) if spec.get("level") is not None else None
        sink = make_sink(spec["sink"])
        return _route(sink, _sink_format(sink, fmt, default_format), level)
    sink = make_sink(spec)
    return _route(sink, _sink_format(sink, None, default_format), None)


def _sink_format(sink: Sink, given: str | None, default_format: str) -> str:
    """The format for ``sink``: a sink that parses its lines (syslog, OpenTelemetry) sets
    ``required_format`` and gets it whatever the default; naming another one is an error."""
    required = getattr(sink, "required_format", None)
    if required is None:
        return given or default_format
    if given is not None and given != required:
        _close_quietly(sink)
        raise ValueError(f"sink {sink!r} needs format {required!r}, got {given!r}")
    return str(required)


def _route(sink: Sink, fmt: str, level: int | None) -> _engine.Route:
    # The console format is coloured when its stream is a terminal, plain otherwise.
    if fmt == "console" and sink.isatty():
        fmt = "console-color"
    return _engine.Route(sink, fmt, level)


def _check_trace_ids(value: object) -> bool:
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"trace_ids must be 'auto', True or False, got {value!r}")
    if value is False:
        return False
    found = otel_installed()
    if value is True and not found:
        raise ValueError("trace_ids=True needs OpenTelemetry: pip install opentelemetry-api")
    return found


def _check_redact(names: object) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, (list, tuple, frozenset, set)):
        raise TypeError(f"redact must be a tuple of field names, not {type(names).__name__}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"redact entries must be non-empty strings, got {name!r}")
    return tuple(name.lower() for name in names)


def _apply(new: Config, routes: list[_engine.Route], close_replaced: bool = True) -> list[_engine.Route]:
    """Install ``new`` and ``routes``; returns the routes replaced."""
    global _current, _exiting
    with _lock:
        if not _engine.at_exit() and not _engine.in_multiprocessing_child():
            _exiting = False  # a new configuration batches again (see shutdown())
        for route in routes:
            route.announce = _announcer(route.format)
        async_queue.flush()  # records queued under the old settings go to the old sinks
        old_routes = _engine.set_routes(routes)
        set_redacted(new.redact)
        _render.span_ids = load_span_ids() if new.trace_ids else None
        _engine.set_flush_interval(new.flush_interval)
        async_queue.configure(new.queue_size, new.batch_size, new.max_latency, new.overflow)
        _current = new
        for listener in _listeners:
            listener(new)
        # Only now that the loggers write to the new routes: close the sinks replaced (what
        # threads still hand them is written first, and a file reopens for a late line).
        kept = {id(route.sink) for route in routes}
        for route in old_routes:
            if close_replaced and id(route.sink) not in kept:
                _engine.close_route(route)
        return old_routes


def swap(new: Config, routes: list[_engine.Route]) -> tuple[Config, list[_engine.Route]]:
    """Install a configuration temporarily, without closing the sinks it replaces; returns
    what to pass back to restore the previous one (kakashi.testing.capture)."""
    old = current()
    return old, _apply(new, routes, close_replaced=False)


def _announcer(fmt: str) -> Callable[[str], str]:
    def announce(text: str) -> str:
        return render_line(fmt, "WARNING", "kakashi", text)

    return announce


def _close_quietly(sink: Sink) -> None:
    _engine.close_sink(sink)


def current() -> Config:
    """The configuration in force, reading the ``KAKASHI_*`` variables on first use."""
    config = _current
    if config is None:
        with _lock:
            if _current is None:
                _configure_from_env()
            config = _current
    return config  # type: ignore[return-value]


def _configure_from_env() -> None:
    """Defaults for a program that never calls configure(). A bad variable is reported on
    stderr and ignored: a typo in the environment must not crash the service at its first
    log call."""
    checks: dict[str, Callable[[str], object]] = {"level": parse_level, "format": _check_format, "sink": _env_sink}
    options: dict[str, object] = {}
    for var, key in ((ENV_LEVEL, "level"), (ENV_FORMAT, "format"), (ENV_SINK, "sink")):
        value = os.environ.get(var, "").strip()
        if not value:
            continue
        try:
            options[key] = checks[key](value)
        except (ValueError, TypeError, OSError) as exc:
            report(f"env:{var}", f"ignoring {var}={value!r}: {exc}")
    configure(**options)  # type: ignore[arg-type]


def _env_sink(value: str) -> Sink:
    # KAKASHI_SINK=STDOUT means the stream (a file of that name is almost never meant).
    return make_sink(value.lower() if value.lower() in ("stdout", "stderr") else value)


def add_listener(listener: Callable[[Config], None]) -> None:
    _listeners.append(listener)


def shutdown(timeout: float = 10.0) -> None:
    """Drain the async queue and stop its worker, write everything pending, close the sinks,
    and write every later record at once (no batching) until ``configure()`` is called
    again: a server that logs its last lines after shutdown and then dies by a signal
    (uvicorn) loses nothing. Safe to call twice; files are reopened on demand."""
    deadline = time.monotonic() + timeout
    _write_through(timeout)
    if not _engine.flush_all(max(0.0, deadline - time.monotonic())):
        _engine.mark_stuck()  # what it could not write now is written if the sink returns
    for route in _engine.routes():
        _engine.close_route(route, deadline - time.monotonic())


def _write_through(timeout: float = 5.0, stall: float | None = None) -> None:
    """Drain the async queue, then rebuild every logger to write each record before its
    call returns (also used at interpreter exit)."""
    global _exiting
    async_queue.shutdown(timeout, stall)  # drain what async loggers queued
    _exiting = True
    config = _current
    if config is not None:
        for listener in _listeners:
            listener(config)


def exiting() -> bool:
    """Whether loggers write through (after shutdown(), and at interpreter exit)."""
    return _exiting


def _write_through_at_exit() -> None:
    # As long as the sinks make progress, up to a limit (a slow remote sink must not lose
    # the queue; a stuck one must not hold the exit for long).
    _write_through(EXIT_LIMIT, EXIT_STALL)


_engine.on_exit(_write_through_at_exit)
_engine.start_if_multiprocessing_child()


def _after_fork_child() -> None:
    # A thread of the parent may have been inside configure(): never wait on its lock.
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)

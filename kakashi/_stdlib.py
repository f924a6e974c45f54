"""The stdlib bridge: records of the ``logging`` module come out through kakashi.

``capture_stdlib()`` puts one :class:`StdlibHandler` on the root logger, so uvicorn,
Django, requests and every other library logging through stdlib reach the same sinks in
the same format, with their ``extra=`` attributes as fields and their tracebacks.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from . import _engine
from ._levels import parse_level
from ._logger import get_logger
from ._render import internal_error

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
# Not fields either: uvicorn's ``color_message``, a copy of the message with ANSI colour codes
# for its own formatter (as a field it would repeat each startup line, escapes and all).
_NOT_FIELDS = _STANDARD | {"color_message"}
# Per thread, a weak reference to the record a StdlibHandler took last: a record meets every
# handler up the logger tree in one go, in its thread, so one on a logger and another on
# the root (Flask's app.logger and capture_stdlib()) would otherwise take it twice.
_last = threading.local()


class StdlibHandler(logging.Handler):
    """A ``logging.Handler`` that hands each record to the kakashi logger of the same name.

    Use it directly in ``dictConfig`` / Django's ``LOGGING``
    (``{"class": "kakashi.StdlibHandler"}``) or through :func:`capture_stdlib`.
    The kakashi logger's level applies on top of the stdlib one. Records emitted from inside
    a kakashi sink (a sink that itself logs through stdlib, or kakashi output forwarded into
    stdlib) are not taken back in (that would loop); they are counted as dropped and
    announced in the log. A record that meets several of these handlers on its way up the
    logger tree (one on its logger, one on the root) is taken once.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if _taken_already(record):
            return
        if _engine.in_flush():
            # Emitted from inside a kakashi sink (a sink that logs through stdlib, or kakashi
            # output forwarded into stdlib): taking it back in would loop. Counted, announced.
            _engine.drop_inside()
            return
        try:
            try:
                message = record.getMessage()
            except Exception as exc:  # noqa: BLE001 - a bad %-format in a library's call
                message = f"{record.msg} <format error {type(exc).__name__}; args: {record.args!r}>"
            fields = {k: v for k, v in record.__dict__.items() if k not in _NOT_FIELDS}
            exc_info: Any = record.exc_info if record.exc_info and record.exc_info[0] is not None else None
            get_logger(record.name).log(record.levelno, message, exc_info=exc_info, **fields)
        except Exception as exc:  # noqa: BLE001 - never hurts the caller: not into the library that logged
            internal_error(exc)


def _taken_already(record: logging.LogRecord) -> bool:
    """Whether a StdlibHandler further down the logger tree took ``record`` (remembers it)."""
    last = getattr(_last, "record", None)
    if last is not None and last() is record:
        return True
    try:
        _last.record = weakref.ref(record)
    except TypeError:  # a record class without weak references (a custom factory's)
        _last.record = None
    return False


def capture_stdlib(level: int | str = "INFO", *, take_over: bool = True) -> StdlibHandler:
    """Route every stdlib ``logging`` record of ``level`` and above into kakashi.

    Installs one :class:`StdlibHandler` on the root logger (calling this again reuses it)
    and lowers the root logger's level to ``level`` if it is higher. With ``take_over``
    (the default), handlers already on the root logger and on any other logger are removed
    and every logger that had any propagates to the root, also when several loggers share
    one handler list, so nothing is written twice and nothing is lost (uvicorn and gunicorn
    set up their own handlers; this replaces them). Returns the handler; remove it
    with ``logging.getLogger().removeHandler(handler)``.

    Raises:
        ValueError, TypeError: an unknown level.
    """
    number = parse_level(level)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StdlibHandler)), None) or StdlibHandler()
    if take_over:
        # Which loggers have handlers is read before any is removed: loggers can share one
        # handler list (gunicorn's uvicorn worker gives uvicorn.error the list object of
        # gunicorn.error), so emptying one empties the others, which would then look as if
        # they never had any and keep propagate=False: their records lost, or bare on stderr.
        taken = [
            existing
            for existing in list(logging.Logger.manager.loggerDict.values())
            if isinstance(existing, logging.Logger) and existing.handlers
        ]
        for other in list(root.handlers):
            if other is not handler:
                root.removeHandler(other)
        for existing in taken:
            for other in list(existing.handlers):
                existing.removeHandler(other)
            # A list of its own: a list shared with the root would get the root's handler.
            existing.handlers = []
            existing.propagate = True
    if handler not in root.handlers:
        root.addHandler(handler)
    if root.level > number or root.level == logging.NOTSET:
        root.setLevel(number)
    return handler

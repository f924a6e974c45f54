"""kakashi: structured logging for Python services, fast and never losing a line."""

from __future__ import annotations

from ._api import flush, shutdown, shutdown_async_logging, stats
from ._config import configure
from ._context import bind_context, clear_context, context, get_context, push_context, reset_context, unbind_context
from ._levels import CRITICAL, DEBUG, ERROR, INFO, WARNING
from ._logger import Logger, Prepared, clear_logger_cache, get_async_logger, get_logger
from ._otlp import OTLPSink
from ._rotation import RotatingFileSink
from ._sinks import CallableSink, FileSink, Sink, StreamSink
from ._stdlib import StdlibHandler, capture_stdlib
from ._syslog import SyslogSink
from ._values import DEFAULT_REDACT, is_redacted

__version__ = "0.3.0"

# kakashi 0.2.x names
LOG_LEVEL_DEBUG = DEBUG
LOG_LEVEL_INFO = INFO
LOG_LEVEL_WARNING = WARNING
LOG_LEVEL_ERROR = ERROR
LOG_LEVEL_CRITICAL = CRITICAL

__all__ = [
    "CRITICAL",
    "CallableSink",
    "DEBUG",
    "DEFAULT_REDACT",
    "ERROR",
    "FileSink",
    "INFO",
    "LOG_LEVEL_CRITICAL",
    "LOG_LEVEL_DEBUG",
    "LOG_LEVEL_ERROR",
    "LOG_LEVEL_INFO",
    "LOG_LEVEL_WARNING",
    "Logger",
    "OTLPSink",
    "Prepared",
    "RotatingFileSink",
    "Sink",
    "StdlibHandler",
    "StreamSink",
    "SyslogSink",
    "WARNING",
    "__version__",
    "bind_context",
    "capture_stdlib",
    "clear_context",
    "clear_logger_cache",
    "configure",
    "context",
    "flush",
    "get_async_logger",
    "get_context",
    "get_logger",
    "is_redacted",
    "push_context",
    "reset_context",
    "shutdown",
    "shutdown_async_logging",
    "stats",
    "unbind_context",
]

"""SyslogSink: JSON records as RFC 5424 messages over UDP, TCP (RFC 6587) or a Unix socket.

Each rendered line is one JSON record; it becomes the MSG of one syslog message, with PRI
from its level, TIMESTAMP from its ``timestamp``, PROCID the process id and MSGID its logger.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import json
import os
import re
import select
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from ._sinks import Sink, program_name

FACILITIES: dict[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "security": 13,
    "console": 14,
    "solaris-cron": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}

# kakashi level name -> syslog severity (0 emergency ... 7 debug).
SEVERITIES: dict[str, int] = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
DEFAULT_SEVERITY = 5  # notice: a level without a mapping, or a line that is not JSON

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)\Z")
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")


def _header_field(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit``
    characters, ``-`` (NILVALUE) when empty."""
    text = _NOT_PRINTABLE.sub("_", value)[:limit]
    return text or "-"


def _now_timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def format_rfc5424(
    line: str,
    *,
    facility: int,
    app_name: str,
    hostname: str,
    procid: int,
    severities: Mapping[str, int] = SEVERITIES,
) -> bytes:
    """One rendered JSON line as an RFC 5424 message (without framing).

    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG``: PRI from the record's level,
    TIMESTAMP from its ``timestamp`` (now, if it has none), MSGID its logger name, no
    structured data, and MSG the JSON record itself (UTF-8, no BOM). A line that is not a
    JSON object is sent as the MSG unchanged, with severity notice.
    """
    line = line.rstrip("\n")
    severity, timestamp, msgid = DEFAULT_SEVERITY, "", ""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        level = record.get("level")
        severity = severities.get(level, DEFAULT_SEVERITY) if isinstance(level, str) else DEFAULT_SEVERITY
        stamp = record.get("timestamp")
        timestamp = stamp if isinstance(stamp, str) and _TIMESTAMP.match(stamp) else ""
        logger = record.get("logger")
        msgid = logger if isinstance(logger, str) else ""
    header = (
        f"<{facility * 8 + severity}>1 {timestamp or _now_timestamp()} {_header_field(hostname, 255)} "
        f"{_header_field(app_name, 48)} {procid} {_header_field(msgid, 32)} - "
    )
    return header.encode("ascii") + line.encode("utf-8", "backslashreplace")


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d " % len(message) + message


def _facility(value: int | str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"facility must be a name or an int, not {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 23:
            raise ValueError(f"facility {value!r} is out of range: use 0 to 23 or a name")
        return value
    if isinstance(value, str) and value.lower() in FACILITIES:
        return FACILITIES[value.lower()]
    raise ValueError(f"unknown facility {value!r}; valid: {', '.join(FACILITIES)} or 0 to 23")


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has data or an end-of-file to read now (never waits)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class SyslogSink(Sink):
    """Sends each record to a syslog server as one RFC 5424 message.

    Use it with the JSON format (``configure()`` gives it JSON unless told otherwise): the
    JSON record is the message body, so the receiver can parse it back whole.

    Args:
        address: ``"udp://host:port"`` (one datagram per record), ``"tcp://host:port"``
            (octet-counted frames, RFC 6587; reconnects when the server comes back) or
            ``"unix:///dev/log"`` (a datagram socket, or a stream socket with octet-counted
            frames when the path is a stream socket). The port defaults to 514.
        facility: a name (``"user"``, ``"daemon"``, ``"local0"`` ...) or a number 0 to 23.
        app_name: APP-NAME (default: the program name, ``sys.argv[0]``'s base name).
        hostname: HOSTNAME (default: ``socket.gethostname()``).
        severities: level name to syslog severity, merged over the default
            (DEBUG 7, INFO 6, WARNING 4, ERROR 3, CRITICAL 2; anything else 5).
        timeout: seconds a connect or a send may block at most.
        retry_interval: after a failed connect, seconds during which writes fail at once
            (counted as dropped) instead of trying again, so a dead server never costs each
            log call a connect timeout.

    Raises:
        ValueError: a malformed address, an unknown facility or a bad severity.
        OSError: a Unix socket that cannot be connected.
    """

    required_format = "json"

    def __init__(
        self,
        address: str = "unix:///dev/log",
        *,
        facility: int | str = "user",
        app_name: str | None = None,
        hostname: str | None = None,
        severities: Mapping[str, int] | None = None,
        timeout: float = 2.0,
        retry_interval: float = 1.0,
    ) -> None:
        super().__init__()
        parts = urlsplit(address)
        scheme = parts.scheme.lower()
        if scheme not in ("udp", "tcp", "unix"):
            raise ValueError(f"syslog address {address!r} must start with udp://, tcp:// or unix://")
        self.address, self.name = address, f"syslog {address}"
        self.transport = scheme
        if scheme == "unix":
            if not parts.path:
                raise ValueError(f"syslog address {address!r} names no socket path")
            self._target: str | tuple[str, int] = parts.path
        else:
            try:
                port = parts.port or 514
            except ValueError:
                raise ValueError(f"syslog address {address!r} has a bad port") from None
            if not parts.hostname:
                raise ValueError(f"syslog address {address!r} names no host")
            self._target = (parts.hostname, port)
        self.facility = _facility(facility)
        self.app_name = program_name() if app_name is None else app_name
        self.hostname = socket.gethostname() if hostname is None else hostname
        self.severities = {**SEVERITIES, **(severities or {})}
        for level, severity in self.severities.items():
            if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 7:
                raise ValueError(f"severity for {level!r} must be an int 0 to 7, got {severity!r}")
        self.timeout, self.retry_interval = timeout, retry_interval
        self._sock: socket.socket | None = None
        self._stream = scheme == "tcp"
        self._failed_at: float | None = None  # monotonic time of the last failed connect
        if scheme == "unix":
            self._connect()  # local and instant: a missing /dev/log fails here, not later

    # Connection handling (under sink.lock, like every write).

    def _connect(self) -> socket.socket:
        self._close_socket()
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < self.retry_interval:
            raise OSError(errno.ECONNREFUSED, f"{self.name}: not retrying for {self.retry_interval}s after a failure")
        try:
            sock = self._open_socket()
        except OSError:
            self._failed_at = now
            raise
        self._failed_at = None
        self._sock = sock
        return sock

    def _open_socket(self) -> socket.socket:
        if self.transport == "unix":
            path = self._target
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_UNIX, kind)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(path)
                except OSError as exc:
                    sock.close()
                    if exc.errno == errno.EPROTOTYPE and kind == socket.SOCK_DGRAM:
                        continue  # a stream socket: connect again as a stream
                    raise
                self._stream = kind == socket.SOCK_STREAM
                return sock
        assert isinstance(self._target, tuple)
        host, port = self._target
        if self.transport == "tcp":
            return socket.create_connection((host, port), timeout=self.timeout)
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.timeout)
            sock.connect(sockaddr)  # connected: a refused datagram makes a later send fail
        except OSError:
            sock.close()
            raise
        return sock

    def _live_socket(self) -> socket.socket:
        """The connected socket, reconnecting if the stream's peer has closed it (a syslog
        server never sends, so anything readable on a stream is its end-of-file)."""
        sock = self._sock
        if sock is None:
            return self._connect()
        if self._stream:
            alive = True
            if _readable(sock):  # a plain recv would wait for the socket's timeout
                try:
                    alive = sock.recv(1, socket.MSG_PEEK) != b""
                except OSError:
                    alive = False
            if not alive:
                return self._connect()
        return sock

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # Writing.

    def _messages(self, data: str) -> list[bytes]:
        procid = os.getpid()
        return [
            format_rfc5424(
                line,
                facility=self.facility,
                app_name=self.app_name,
                hostname=self.hostname,
                procid=procid,
                severities=self.severities,
            )
            for line in data.splitlines()
        ]

    def write(self, data: str) -> None:
        messages = self._messages(data)
        if self._stream:
            self._write_stream([octet_counted(message) for message in messages])
        else:
            self._write_datagrams(messages)

    def _write_stream(self, frames: list[bytes]) -> None:
        """Send the frames in order; on an error reconnect once and resend from the first
        frame not wholly handed to the kernel. Raises with ``lines_written`` set to the
        frames sent if the second attempt fails too."""
        sent = 0  # frames wholly handed to the kernel
        for attempt in (1, 2):
            data = b"".join(frames[sent:])
            ends = list(itertools.accumulate(len(frame) for frame in frames[sent:]))
            offset = 0
            try:
                sock = self._live_socket() if attempt == 1 else self._connect()
                view = memoryview(data)
                while offset < len(data):
                    offset += sock.send(view[offset:])
                return
            except OSError as exc:
                sent += bisect.bisect_right(ends, offset)
                self._close_socket()
                if attempt == 2:
                    exc.lines_written = sent  # type: ignore[attr-defined]
                    raise

    def _write_datagrams(self, messages: list[bytes]) -> None:
        """One datagram per record; every record is tried, and the error (if any) says how
        many were sent."""
        sent = 0
        error: OSError | None = None
        for message in messages:
            try:
                sock = self._sock if self._sock is not None else self._connect()
                sock.send(message)
                sent += 1
            except OSError as exc:
                error = exc
                if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED):
                    self._close_socket()  # the socket itself is broken: a new one next time
        if error is not None:
            error.lines_written = sent  # type: ignore[attr-defined]
            raise error

    def close(self) -> None:
        self._close_socket()
        self._failed_at = None

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        self._close_socket()  # the child gets its own connection

"""SyslogSink: the RFC 5424 bytes, octet counting, and delivery to a real rsyslog over TCP
(with a restart in the middle) and UDP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kakashi
from kakashi._syslog import format_rfc5424, octet_counted

RSYSLOGD = shutil.which("rsyslogd") or next(
    (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.path.exists(p)), None
)
needs_rsyslog = pytest.mark.skipif(
    RSYSLOGD is None, reason="rsyslogd is not installed (apt-get install rsyslog; .ci/run installs it)"
)


# ---------------------------------------------------------------- the message format


def test_rfc5424_message_is_exactly_these_bytes() -> None:
    line = '{"timestamp":"2026-01-02T03:04:05.678Z","level":"WARNING","logger":"app.db","message":"slow","ms":5}\n'
    message = format_rfc5424(line, facility=16, app_name="api", hostname="web-1", procid=42)
    assert message == (
        b"<132>1 2026-01-02T03:04:05.678Z web-1 api 42 app.db - "
        b'{"timestamp":"2026-01-02T03:04:05.678Z","level":"WARNING","logger":"app.db","message":"slow","ms":5}'
    )


def test_header_fields_are_printable_ascii_and_cut_to_their_limits() -> None:
    line = json.dumps({"timestamp": "bad", "level": "LEVEL25", "logger": "a b" + "x" * 40, "message": "é"})
    message = format_rfc5424(line, facility=1, app_name="my app", hostname="", procid=7)
    pri_version, stamp, host, app, procid, msgid, data, body = message.split(b" ", 7)
    assert data == b"-"
    assert pri_version == b"<13>1"  # user.notice: an unmapped level
    assert stamp.endswith(b"Z") and stamp[10:11] == b"T"  # "bad" replaced by now
    assert (host, app, procid) == (b"-", b"my_app", b"7")
    assert msgid == b"a_b" + b"x" * 29 and len(msgid) == 32
    assert json.loads(body) == json.loads(line)


def test_a_line_that_is_not_json_is_sent_unchanged_as_notice() -> None:
    message = format_rfc5424("plain text\n", facility=3, app_name="a", hostname="h", procid=1)
    assert message.startswith(b"<29>1 ") and message.endswith(b" h a 1 - - plain text")


def test_octet_counting_counts_bytes_not_characters() -> None:
    assert octet_counted(b"abc") == b"3 abc"
    assert octet_counted("é".encode()) == b"2 \xc3\xa9"
    assert octet_counted(b"") == b"0 "


def test_bad_options_fail_in_the_constructor() -> None:
    with pytest.raises(ValueError, match="udp://"):
        kakashi.SyslogSink("http://x:1")
    with pytest.raises(ValueError, match="facility"):
        kakashi.SyslogSink("udp://127.0.0.1:9", facility="nope")
    with pytest.raises(ValueError, match="0 to 7"):
        kakashi.SyslogSink("udp://127.0.0.1:9", severities={"INFO": 9})
    assert kakashi.SyslogSink("udp://127.0.0.1:9", facility="local3").facility == 19


def test_configure_gives_the_sink_json_and_refuses_another_format() -> None:
    sink = kakashi.SyslogSink("tcp://127.0.0.1:9")
    kakashi.configure(format="text", sinks=[sink, "stderr"])
    from kakashi import _engine

    assert [route.format for route in _engine.routes()] == ["json", "text"]
    with pytest.raises(ValueError, match="needs format 'json'"):
        kakashi.configure(sinks=[{"sink": kakashi.SyslogSink("tcp://127.0.0.1:9"), "format": "logfmt"}])


# ---------------------------------------------------------------- our own receivers


def read_frames(data: bytes) -> list[bytes]:
    """Split an octet-counted stream into its messages (asserting it is well formed)."""
    frames = []
    while data:
        length, space, rest = data.partition(b" ")
        assert space and length.isdigit(), f"bad frame at {data[:40]!r}"
        size = int(length)
        assert len(rest) >= size, "truncated frame"
        frames.append(rest[:size])
        data = rest[size:]
    return frames


@pytest.mark.timeout(30)
def test_tcp_sends_one_octet_counted_frame_per_record() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=serve)
    thread.start()
    sink = kakashi.SyslogSink(f"tcp://127.0.0.1:{port}", app_name="t", hostname="h")
    kakashi.configure(sink=sink)
    log = kakashi.get_logger("svc")
    for i in range(250):
        log.info("line\nwith newline", seq=i)
    kakashi.flush()
    kakashi.shutdown()  # closes the connection: the server sees EOF
    thread.join(10)
    server.close()
    frames = read_frames(bytes(received))
    records = [json.loads(frame.split(b" - ", 1)[1]) for frame in frames]
    assert [r["seq"] for r in records] == list(range(250))
    assert all(frame.startswith(b"<14>1 ") and b" h t " in frame for frame in frames)
    assert records[0]["message"] == "line\nwith newline"


@pytest.mark.timeout(30)
def test_unix_datagram_socket_gets_one_message_per_record(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(10)
    kakashi.configure(sink=kakashi.SyslogSink(f"unix://{path}", facility="daemon", app_name="u"))
    log = kakashi.get_logger("svc")
    for i in range(5):
        log.error("failed", seq=i)  # ERROR: written before the call returns
    messages = [server.recv(65536) for _ in range(5)]
    server.close()
    assert [json.loads(m.split(b" - ", 1)[1])["seq"] for m in messages] == list(range(5))
    assert all(m.startswith(b"<27>1 ") for m in messages)  # daemon.err


def test_unix_socket_that_does_not_exist_fails_in_the_constructor(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        kakashi.SyslogSink(f"unix://{tmp_path}/missing.sock")


def counts() -> tuple[int, int]:
    """(written, dropped) so far: kakashi's counters run from the start of the process."""
    stats = kakashi.stats()
    return stats["written"], stats["dropped"]


def since(before: tuple[int, int]) -> tuple[int, int]:
    """(written, dropped) since ``before``."""
    now = counts()
    return now[0] - before[0], now[1] - before[1]


def test_tcp_server_down_is_counted_and_never_raises() -> None:
    before = counts()
    port = free_port(socket.SOCK_STREAM)
    kakashi.configure(sink=kakashi.SyslogSink(f"tcp://127.0.0.1:{port}", timeout=1))
    log = kakashi.get_logger("svc")
    for i in range(7):
        log.info("x", seq=i)
    kakashi.flush()
    assert since(before) == (0, 7)


def test_a_datagram_too_big_is_counted_and_the_others_are_sent() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    before = counts()
    kakashi.configure(sink=kakashi.SyslogSink(f"udp://127.0.0.1:{port}"), max_value_length=200_000)
    log = kakashi.get_logger("svc")
    log.info("small", seq=0)
    log.info("big", seq=1, blob="x" * 70_000)  # over the 65,507-byte UDP limit: EMSGSIZE
    log.info("small", seq=2)
    kakashi.flush()
    got = [json.loads(receiver.recv(65536).split(b" - ", 1)[1])["seq"] for _ in range(2)]
    receiver.close()
    assert got == [0, 2]
    assert since(before) == (2, 1)


# ---------------------------------------------------------------- a real rsyslog


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Rsyslog:
    """rsyslogd in the foreground with imudp + imtcp on 127.0.0.1, writing each raw message
    (header and JSON body) as one line of ``out``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.out = tmp / "out.log"
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port(socket.SOCK_STREAM)
        work = tmp / "work"
        work.mkdir()
        self.conf = tmp / "rsyslog.conf"
        self.conf.write_text(
            f"""
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}" rcvbufSize="16m")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")
template(name="raw" type="string" string="%rawmsg%\\n")
*.* action(type="omfile" file="{self.out}" template="raw")
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.probes = 0

    def start(self) -> None:
        assert RSYSLOGD is not None
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.tmp / "rsyslog.pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "rsyslog.err", "ab"),  # noqa: SIM115 - the child owns it
        )
        # Ready when a probe sent over TCP and one over UDP are in the file.
        self.probes += 1
        tcp_probe, udp_probe = f"probe-tcp-{self.probes}", f"probe-udp-{self.probes}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1) as conn:
                    conn.sendall(octet_counted(f"<14>1 - - - - - - {tcp_probe}".encode()))
                break
            except OSError:
                assert self.proc.poll() is None, (self.tmp / "rsyslog.err").read_text()
                assert time.monotonic() < deadline, "rsyslogd did not start listening"
                time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            wait_until(
                lambda: (
                    udp.sendto(f"<14>1 - - - - - - {udp_probe}".encode(), ("127.0.0.1", self.udp_port)) > 0
                    and udp_probe in self.text()
                ),
                "the UDP probe",
            )
        wait_until(lambda: tcp_probe in self.text(), "the TCP probe")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def text(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def records(self) -> list[dict[str, object]]:
        """The kakashi records received (probes left out), in file order. rsyslog may be
        writing while the test reads: a last line without its newline is not complete yet."""
        found = []
        for line in self.text().split("\n")[:-1]:
            header, _, body = line.partition(" - ")
            if body.startswith("{"):
                assert " kakashi-test " in header, header
                record = json.loads(body)
                record["_pri"] = header.split(" ", 1)[0]
                found.append(record)
        return found


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path)
    server.start()
    yield server
    server.stop()


def log_sequence(start: int, stop: int) -> None:
    log = kakashi.get_logger("seq")
    for i in range(start, stop):
        log.info("record", seq=i)
    kakashi.flush()


def seqs(server: Rsyslog) -> list[int]:
    return [int(record["seq"]) for record in server.records() if "seq" in record]  # type: ignore[call-overload]


@needs_rsyslog
@pytest.mark.timeout(90)
def test_tcp_delivers_10000_records_exactly_once_in_order(rsyslog: Rsyslog) -> None:
    sink = kakashi.SyslogSink(f"tcp://127.0.0.1:{rsyslog.tcp_port}", app_name="kakashi-test")
    before = counts()
    kakashi.configure(sink=sink)
    log_sequence(0, 10_000)
    wait_until(lambda: len(rsyslog.records()) >= 10_000, "10,000 records")
    kakashi.shutdown()
    assert seqs(rsyslog) == list(range(10_000))
    assert {record["_pri"] for record in rsyslog.records()} == {"<14>1"}  # user.info
    assert since(before) == (10_000, 0)


@needs_rsyslog
@pytest.mark.timeout(90)
def test_udp_delivers_what_it_counts_as_written(rsyslog: Rsyslog) -> None:
    sink = kakashi.SyslogSink(f"udp://127.0.0.1:{rsyslog.udp_port}", app_name="kakashi-test")
    before = counts()
    kakashi.configure(sink=sink)
    log_sequence(0, 10_000)
    written, dropped = since(before)
    assert written + dropped == 10_000
    # UDP has no acknowledgement: loss on the way cannot be counted by the sender. With a
    # 16 MB receive buffer on loopback, everything counted as written must arrive.
    wait_until(lambda: len(rsyslog.records()) >= written, f"{written} records")
    received = seqs(rsyslog)
    assert len(received) == len(set(received)) == written
    assert received == sorted(received)


@needs_rsyslog
@pytest.mark.timeout(120)
def test_tcp_across_a_server_restart_loses_only_what_stats_counts(rsyslog: Rsyslog) -> None:
    sink = kakashi.SyslogSink(f"tcp://127.0.0.1:{rsyslog.tcp_port}", app_name="kakashi-test", retry_interval=0)
    before = counts()
    kakashi.configure(sink=sink)
    log_sequence(0, 3_000)
    wait_until(lambda: len(rsyslog.records()) >= 3_000, "the first 3,000 records")
    rsyslog.stop()
    log_sequence(3_000, 5_000)  # server down: each write reconnects once, fails, is counted
    assert since(before) == (3_000, 2_000)
    rsyslog.start()
    log_sequence(5_000, 10_000)  # the sink notices the dead connection and reconnects
    assert since(before) == (8_000, 2_000)
    wait_until(lambda: len(rsyslog.records()) >= 8_000, "8,000 records")
    kakashi.shutdown()
    received = seqs(rsyslog)
    assert received == list(range(3_000)) + list(range(5_000, 10_000))
    # The first write after the restart announces the loss in the stream itself.
    notices = [(r["_pri"], r["message"]) for r in rsyslog.records() if "seq" not in r]
    assert notices == [("<12>1", "kakashi lost 2,000 records: the sink failed (see stats())")]

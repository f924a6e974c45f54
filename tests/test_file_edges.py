"""A log file's edges: removed or renamed under the sink (logrotate), and a disk that fills up."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kakashi
from kakashi import _sinks

from conftest import read_lines, seq_check

pytestmark = pytest.mark.timeout(60)

SINKS: dict[str, Callable[[Path], kakashi.FileSink]] = {
    "FileSink": kakashi.FileSink,
    "RotatingFileSink": lambda path: kakashi.RotatingFileSink(path, max_bytes=10_000_000),
}


@pytest.fixture(autouse=True, params=["proc-link", "stat"])
def watched_by(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case twice: with the path watched through /proc/self/fd (Linux), and through
    os.stat (where /proc is missing)."""
    if request.param == "stat":
        monkeypatch.setattr(_sinks, "_fd_link", lambda fd, path: (None, ""))
    return str(request.param)


def test_the_fast_watch_is_in_use_where_proc_is(log_path: Path, watched_by: str) -> None:
    sink = kakashi.FileSink(log_path)
    assert (sink._link is not None) == (watched_by == "proc-link" and os.path.isdir("/proc/self/fd"))
    sink.close()


def log_range(log: kakashi.Logger, start: int, stop: int) -> None:
    for i in range(start, stop):
        log.info("line", t=0, i=i)
    kakashi.flush()


@pytest.mark.parametrize("make_sink", SINKS.values(), ids=SINKS.keys())
def test_a_removed_log_file_is_created_again_and_later_lines_land_in_it(
    log_path: Path, make_sink: Callable[[Path], kakashi.FileSink]
) -> None:
    kakashi.configure(sink=make_sink(log_path), batch_size=10, flush_interval=1000)
    log = kakashi.get_logger("rm")
    before = kakashi.stats()
    log_range(log, 0, 30)
    os.remove(log_path)  # `rm app.log` while the program logs
    log_range(log, 30, 60)
    assert seq_check(read_lines(log_path)) == {0: list(range(30, 60))}
    after = kakashi.stats()
    assert (after["written"] - before["written"], after["dropped"] - before["dropped"]) == (60, 0)


@pytest.mark.parametrize("create", [True, False], ids=["create", "nocreate"])
@pytest.mark.parametrize("make_sink", SINKS.values(), ids=SINKS.keys())
def test_a_renamed_log_file_keeps_the_earlier_lines_and_the_path_gets_the_later_ones(
    log_path: Path, make_sink: Callable[[Path], kakashi.FileSink], create: bool
) -> None:
    kakashi.configure(sink=make_sink(log_path), batch_size=10, flush_interval=1000)
    log = kakashi.get_logger("mv")
    log_range(log, 0, 25)
    moved = log_path.with_name("app.log-20240101")
    os.rename(log_path, moved)  # logrotate's default: rename ...
    if create:
        log_path.write_text("")  # ... then `create` an empty file at the path
    log_range(log, 25, 50)
    assert seq_check(read_lines(moved)) == {0: list(range(25))}
    assert seq_check(read_lines(log_path)) == {0: list(range(25, 50))}


def test_a_sink_follows_a_file_replaced_between_two_writes(log_path: Path) -> None:
    sink = kakashi.FileSink(log_path)
    sink.write("one\n")
    replacement = log_path.with_name("new.log")
    replacement.write_text("new file\n")
    os.replace(replacement, log_path)  # the path now names another file
    sink.write("two\n")
    sink.close()
    assert read_lines(log_path) == ["new file", "two"]


def test_a_rotation_whose_live_file_was_removed_loses_nothing(log_path: Path) -> None:
    sink = kakashi.RotatingFileSink(log_path, max_bytes=300, backup_count=100)
    for i in range(5):
        sink.write(f"t=0 i={i} {'x' * 40}\n")
    os.remove(log_path)
    for i in range(5, 20):  # the removed file was nearly full: these lines rotate, twice
        sink.write(f"t=0 i={i} {'x' * 40}\n")

    def backups() -> list[Path]:
        return sorted(log_path.parent.glob("app.log.*"), key=lambda p: -int(p.suffix[1:]))

    lines = [line for backup in backups() for line in read_lines(backup)] + read_lines(log_path)
    assert seq_check(lines) == {0: list(range(5, 20))}
    assert all(p.stat().st_size <= 300 for p in [*backups(), log_path])
    rotated = {p.name: p.read_bytes() for p in backups()}
    os.remove(log_path)
    sink.rotate()  # the live file is missing: nothing to rename, a new file is opened
    sink.write("t=0 i=20\n")
    sink.close()
    assert read_lines(log_path) == ["t=0 i=20"]
    assert {p.name: p.read_bytes() for p in backups()} == rotated


@pytest.fixture
def logrotate() -> str:
    found = shutil.which("logrotate") or next(
        (p for p in ("/usr/sbin/logrotate", "/sbin/logrotate") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    return found


def test_logrotate_without_copytruncate_keeps_every_line_once(tmp_path: Path, logrotate: str) -> None:
    # A real logrotate run (rename, then create) while another process keeps logging.
    log_path = tmp_path / "app.log"
    config = tmp_path / "logrotate.conf"
    config.write_text(f"{log_path} {{\n    rotate 100\n    create\n    missingok\n}}\n")
    code = textwrap.dedent(
        f"""
        import sys, kakashi
        kakashi.configure(sink={str(log_path)!r}, batch_size=20, flush_interval=0.05)
        log = kakashi.get_logger("logrotate")
        print("ready", flush=True)
        i = 0
        for command in sys.stdin:
            if command.strip() == "stop":
                break
            for _ in range(500):
                log.info("line", t=0, i=i)
                i += 1
            kakashi.flush()
            print("logged", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        for _ in range(4):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "logged\n"
            state = tmp_path / "logrotate.state"
            run = subprocess.run(
                [logrotate, "-f", "-s", str(state), str(config)], capture_output=True, text=True, timeout=30
            )
            assert run.returncode == 0, run.stderr
        proc.stdin.write("go\nstop\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "logged\n"
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0
    files = sorted(tmp_path.glob("app.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert len(files) == 4
    lines = [line for path in [*files, log_path] for line in read_lines(path)]
    assert seq_check(lines) == {0: list(range(2500))}
    assert [len(read_lines(path)) for path in [*files, log_path]] == [500] * 5


# ---------------------------------------------------------------- a full disk


class FillingDisk:
    """Stands in for ``os.write`` on the descriptors in ``fds``: takes ``room`` more bytes
    (a short write at the limit, as a filling disk does), then fails with ENOSPC;
    ``room=None`` is a disk with space again. Other descriptors are written for real."""

    def __init__(self, room: int | None) -> None:
        self.room = room
        self.fds: set[int] = set()
        self.real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if fd not in self.fds or self.room is None:
            return self.real(fd, data)
        if self.room == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        size = min(len(data), self.room)
        self.room -= size
        return self.real(fd, bytes(data[:size]))


@pytest.fixture
def filling_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FillingDisk]:
    disk = FillingDisk(None)
    monkeypatch.setattr(_sinks.os, "write", disk)
    yield disk


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in read_lines(path)]  # a cut line is not JSON


@pytest.mark.parametrize("make_sink", SINKS.values(), ids=SINKS.keys())
def test_a_line_cut_by_a_full_disk_is_completed_by_the_next_write(
    log_path: Path, filling_disk: FillingDisk, make_sink: Callable[[Path], kakashi.FileSink]
) -> None:
    sink = make_sink(log_path)
    filling_disk.fds.add(sink.fileno() or -1)
    lines = [json.dumps({"i": i, "pad": "x" * 30}) + "\n" for i in range(8)]
    filling_disk.room = len(lines[0]) * 2 + 10  # the disk fills 10 bytes into the third line
    with pytest.raises(OSError) as info:
        sink.write("".join(lines[:4]))
    assert info.value.errno == errno.ENOSPC and info.value.lines_written == 2  # type: ignore[attr-defined]
    assert not log_path.read_bytes().endswith(b"\n")  # the file holds a cut line now
    with pytest.raises(OSError) as info:
        sink.write(lines[4])  # still full: nothing written, and the cut line still waits
    assert info.value.lines_written == 0  # type: ignore[attr-defined]
    filling_disk.room = 5  # a little space: part of the cut line's rest, then full again
    with pytest.raises(OSError) as info:
        sink.write(lines[5])
    assert info.value.lines_written == 0  # type: ignore[attr-defined]
    filling_disk.room = None  # space again
    sink.write(lines[6] + lines[7])
    sink.close()
    assert [r["i"] for r in records(log_path)] == [0, 1, 2, 6, 7]


def test_a_cut_line_is_completed_in_its_own_file_before_a_rotation(log_path: Path, filling_disk: FillingDisk) -> None:
    lines = [json.dumps({"i": i, "pad": "x" * 30}) + "\n" for i in range(6)]
    size = len(lines[0])
    sink = kakashi.RotatingFileSink(log_path, max_bytes=size * 3 + size // 2, backup_count=5)
    filling_disk.fds.add(sink.fileno() or -1)
    filling_disk.room = size * 2 + 10
    with pytest.raises(OSError):
        sink.write("".join(lines[:3]))
    filling_disk.room = None
    sink.write(lines[3] + lines[4])  # the rest of line 2 first, then a rotation, then 3 and 4
    sink.close()
    backup = log_path.with_name("app.log.1")
    assert [r["i"] for r in records(backup)] == [0, 1, 2]
    assert [r["i"] for r in records(log_path)] == [3, 4]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root); the test is skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True, timeout=20
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        kakashi.configure()  # close the file before the unmount
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


def test_a_full_tmpfs_leaves_only_json_lines_and_counts_add_up(small_tmpfs: Path) -> None:
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (64 * 1024 - 3 * 4096))  # three pages left
    path = small_tmpfs / "app.json"
    kakashi.configure(sink=path, format="json", batch_size=20, flush_interval=1000)
    log = kakashi.get_logger("disk")
    before = kakashi.stats()
    logged = 0

    def log_some(n: int) -> None:
        nonlocal logged
        for _ in range(n):
            log.info("record", i=logged, pad="x" * (logged * 7 % 97))
            logged += 1

    deadline = time.monotonic() + 20
    while kakashi.stats()["dropped"] == before["dropped"] and time.monotonic() < deadline:
        log_some(20)
    log_some(100)  # more batches while the disk stays full
    kakashi.flush()
    full = kakashi.stats()
    assert full["dropped"] > before["dropped"], "the disk never filled"
    assert not path.read_bytes().endswith(b"\n"), "the disk filled between two lines: no cut line to test"
    filler.unlink()
    log_some(40)
    kakashi.flush()
    stats = kakashi.stats()

    lines = read_lines(path)
    parsed = [json.loads(line) for line in lines]  # every line is whole JSON
    seqs = [r["i"] for r in parsed if r["message"] == "record"]
    notices = [r["message"] for r in parsed if r["logger"] == "kakashi"]
    written, dropped = stats["written"] - before["written"], stats["dropped"] - before["dropped"]
    assert stats["records"] == stats["written"] + stats["dropped"] + stats["pending"] and stats["pending"] == 0
    assert written + dropped == logged
    assert seqs == sorted(set(seqs)) and seqs[-40:] == list(range(logged - 40, logged))
    # The line the disk cut counted as dropped until the next write completed it: now it is
    # written, and the notice does not count it as lost.
    assert len(seqs) == written
    assert notices == [f"kakashi lost {dropped:,} records: the sink failed (see stats())"]

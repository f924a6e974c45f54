"""RotatingFileSink: a rotation run counted line by line; several processes rotating one
path; time-based rotation; bad options."""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import threading
import time
from pathlib import Path

import pytest

import kakashi
from kakashi import _rotation

from conftest import run_python, seq_check


def file_texts(path: Path) -> list[tuple[str, str]]:
    """(name, text) of the rotated files, oldest first, then the live one. A rotated file not
    compressed yet (``app.log.3`` beside ``app.log.2.gz``) is read in its place."""
    numbered = re.compile(re.escape(path.name) + r"\.(\d+)(\.gz)?")
    backups = {int(m.group(1)): p for p in path.parent.iterdir() if (m := numbered.fullmatch(p.name))}
    texts: list[tuple[str, str]] = []
    for _, backup in sorted(backups.items(), reverse=True):
        data = gzip.decompress(backup.read_bytes()) if backup.suffix == ".gz" else backup.read_bytes()
        texts.append((backup.name, data.decode()))
    if path.exists():
        texts.append((path.name, path.read_text()))
    for name, text in texts:
        assert text == "" or text.endswith("\n"), f"{name} ends in a torn line"
    return texts


def all_lines(path: Path) -> list[str]:
    """The lines of the rotated files, oldest first, then of the live one."""
    return [line for _, text in file_texts(path) for line in text.splitlines()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("compress", [None, "gzip"])
def test_100k_lines_across_many_rotations_exactly_once(tmp_path: Path, compress: str | None) -> None:
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, max_bytes=200_000, backup_count=10_000, compress=compress)
    kakashi.configure(sink=sink, batch_size=64)
    log = kakashi.get_logger("rot")
    barrier = threading.Barrier(4)

    def work(tid: int) -> None:
        barrier.wait()
        for i in range(25_000):
            log.info("line", t=tid, i=i)

    threads = [threading.Thread(target=work, args=(tid,)) for tid in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    kakashi.shutdown()  # also waits for the last compression
    sink._wait_compressor()
    rotated = list(tmp_path.glob("app.log.*"))
    assert len(rotated) > 20 and not list(tmp_path.glob("*.tmp"))
    assert all(p.stat().st_size <= 200_000 for p in rotated if not compress)
    by_thread = seq_check(all_lines(path))
    assert {tid: seqs == list(range(25_000)) for tid, seqs in by_thread.items()} == dict.fromkeys(range(4), True)


MANY_PROCESSES = """
import multiprocessing, os, sys, traceback, warnings
import kakashi

# Python 3.12+ warns at os.fork() in a process with threads (the master's flusher), as it
# would under gunicorn --preload: expected here.
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

PATH, SHARED, COMPRESS, COUNT, START = {path!r}, {shared!r}, {compress!r}, {count}, {start!r}


def make_sink():
    return kakashi.RotatingFileSink(PATH, max_bytes=4096, backup_count=2000, compress=COMPRESS)


def work(proc, barrier):
    if not SHARED:  # a worker that configures its own sink on the same path
        kakashi.configure(sink=make_sink(), batch_size=50)
    log = kakashi.get_logger("mp")
    barrier.wait(30)
    for i in range(COUNT):
        log.info("line", t=proc, i=i, pad="x" * (i * 7919 % 61))


if SHARED:  # configured in the master, then forked (gunicorn --preload)
    kakashi.configure(sink=make_sink(), batch_size=50)
    kakashi.get_logger("mp").info("line", t=4, i=0, pad="")  # the master has the lock file open
context = multiprocessing.get_context("fork")
barrier = context.Barrier(4)
if START == "multiprocessing":  # children write every line at once
    procs = [context.Process(target=work, args=(proc, barrier)) for proc in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    sys.exit(max(abs(proc.exitcode if proc.exitcode is not None else 99) for proc in procs))
pids = []
for proc in range(4):  # os.fork, as gunicorn starts workers: they batch, and leave by sys.exit
    pid = os.fork()
    if pid == 0:
        try:
            work(proc, barrier)
        except BaseException:
            traceback.print_exc()
            sys.exit(1)
        sys.exit(0)
    pids.append(pid)
sys.exit(max(abs(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])) for pid in pids))
"""

LINE = re.compile(r"\S+ INFO mp: line t=(\d+) i=(\d+) pad=(x*|\"\")")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("compress", [None, "gzip"])
@pytest.mark.parametrize("shared", [True, False], ids=["forked-sink", "sink-per-process"])
@pytest.mark.parametrize("start", ["multiprocessing", "os.fork"])
def test_processes_rotating_one_path_keep_every_line_exactly_once(
    tmp_path: Path, start: str, shared: bool, compress: str | None
) -> None:
    path = tmp_path / "app.log"
    count = 2000
    code = MANY_PROCESSES.format(path=str(path), shared=shared, compress=compress, count=count, start=start)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    texts = file_texts(path)
    assert len(texts) > 100 and not list(tmp_path.glob("*.tmp"))
    seqs: dict[int, list[int]] = {}
    for name, text in texts:
        assert len(text.encode()) <= 4096, f"{name} holds {len(text.encode())} bytes"
        for line in text.splitlines():
            m = LINE.fullmatch(line)
            assert m, f"torn or mixed line in {name}: {line!r}"
            t, i, pad = int(m.group(1)), int(m.group(2)), m.group(3)
            assert len(pad.strip('"')) == i * 7919 % 61, f"torn line in {name}: {line!r}"
            seqs.setdefault(t, []).append(i)
    assert seqs.pop(4, None) == ([0] if shared else None)  # the master's line
    assert {t: s == list(range(count)) for t, s in seqs.items()} == dict.fromkeys(range(4), True)
    if compress:  # every process finished its compressions before it exited
        assert all(name.endswith(".gz") for name, _ in texts[:-1])


TIMED_PROCESSES = """
import multiprocessing, sys
import kakashi

PATH, SHARED = {path!r}, {shared!r}


def make_sink(now):
    return kakashi.RotatingFileSink(PATH, when="H", backup_count=50, clock=lambda: now.value)


def work(proc, now, start, done):
    if not SHARED:
        kakashi.configure(sink=make_sink(now))
    log = kakashi.get_logger("hourly")
    for hour in range(5):
        start.wait(30)
        for i in range(20):
            log.info("line", t=proc, i=hour * 20 + i, hour=hour)
        done.wait(30)


context = multiprocessing.get_context("fork")
now = context.RawValue("d", 1_000_000.0)  # one clock for all processes, moved by the master
if SHARED:
    kakashi.configure(sink=make_sink(now))
start, done = context.Barrier(5), context.Barrier(5)
procs = [context.Process(target=work, args=(proc, now, start, done)) for proc in range(4)]
for proc in procs:
    proc.start()
for hour in range(5):
    start.wait(30)
    done.wait(30)
    now.value += 3600
for proc in procs:
    proc.join(60)
sys.exit(max(abs(proc.exitcode if proc.exitcode is not None else 99) for proc in procs))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shared", [True, False], ids=["forked-sink", "sink-per-process"])
def test_processes_rotate_once_per_time_boundary(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "app.log"
    proc = run_python(TIMED_PROCESSES.format(path=str(path), shared=shared))
    assert proc.returncode == 0, proc.stderr
    texts = file_texts(path)
    hours = [sorted({int(h) for h in re.findall(r" hour=(\d+)$", text, re.M)}) for _, text in texts]
    assert hours == [[0], [1], [2], [3], [4]]  # one file per hour, none empty, none mixed
    by_thread = seq_check(all_lines(path))
    assert {t: s == list(range(100)) for t, s in by_thread.items()} == dict.fromkeys(range(4), True)


def test_a_lock_file_held_elsewhere_delays_a_write_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_rotation, "FILE_LOCK_TIMEOUT", 0.3)
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, max_bytes=20, backup_count=5)
    sink.write("one 678901234567\n")
    holder = os.open(tmp_path / ".app.log.lock", os.O_RDONLY)  # a stopped process holding it
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        sink.write("two 678901234567\n")  # waits, then writes without rotating
        waited = time.monotonic() - started
        started = time.monotonic()
        sink.write("three 8901234567\n")  # no second wait while the lock stays taken
        assert time.monotonic() - started < 0.2 <= waited
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    sink.write("four 78901234567\n")  # the lock is free again: rotates
    sink.close()
    assert all_lines(path) == ["one 678901234567", "two 678901234567", "three 8901234567", "four 78901234567"]
    assert path.read_text() == "four 78901234567\n"
    err = capsys.readouterr().err
    assert err.count("stayed locked by another process for 0.3s; writing without rotating") == 1


def test_a_failed_rotation_keeps_the_lines_in_the_current_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, max_bytes=20, backup_count=5)
    sink.write("one 678901234567\n")
    real_replace = os.replace

    def refuse(source: str, target: str) -> None:
        raise PermissionError(13, "Permission denied", source)

    monkeypatch.setattr(_rotation.os, "replace", refuse)
    sink.write("two 678901234567\n")  # the rotation fails: written on, nothing lost
    monkeypatch.setattr(_rotation.os, "replace", real_replace)
    sink.write("three 8901234567\n")  # rotates now
    sink.close()
    assert all_lines(path) == ["one 678901234567", "two 678901234567", "three 8901234567"]
    assert path.read_text() == "three 8901234567\n"
    assert "rotating " in capsys.readouterr().err


def test_backup_count_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, max_bytes=100, backup_count=2)
    for i in range(10):
        sink.write(f"record {i} " + "x" * 80 + "\n")
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".app.log.lock", "app.log", "app.log.1", "app.log.2"]
    assert [line.split()[1] for line in all_lines(path)] == ["7", "8", "9"]


def test_time_based_rotation_with_an_injected_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, when="H", backup_count=5, clock=lambda: now[0])
    sink.write("hour one\n")
    now[0] += 3599
    sink.write("still hour one\n")
    now[0] += 2
    sink.write("hour two\n")
    sink.close()
    assert (tmp_path / "app.log.1").read_text() == "hour one\nstill hour one\n"
    assert path.read_text() == "hour two\n"


def test_midnight_rotation(tmp_path: Path) -> None:
    now = [86400.0 * 20000 + 86399]  # one second before a UTC midnight
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, when="midnight", clock=lambda: now[0])
    sink.write("late\n")
    now[0] += 1
    sink.write("next day\n")
    sink.close()
    assert (tmp_path / "app.log.1").read_text() == "late\n" and path.read_text() == "next day\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "RotatingFileSink needs max_bytes=, when=, or both"),
        ({"max_bytes": 0}, "max_bytes must be a positive int, got 0"),
        ({"when": "weekly"}, "unknown when 'weekly'; valid: S, M, H, D, midnight"),
        ({"max_bytes": 10, "backup_count": -1}, "backup_count must be an int >= 1, got -1"),
        ({"max_bytes": 10, "backup_count": 0}, "backup_count must be an int >= 1, got 0"),
        ({"max_bytes": 10, "compress": "zip"}, "unknown compress 'zip'; valid: None, 'gzip'"),
    ],
)
def test_bad_rotation_options(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        kakashi.RotatingFileSink(tmp_path / "x.log", **options)  # type: ignore[arg-type]
    assert str(info.value) == message

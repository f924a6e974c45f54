"""Edges found by review: reconfiguring while threads log, forking while another thread is
inside configure() or a slow sink, multiprocessing children, loops through sinks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import kakashi

from conftest import read_lines, run_python, seq_check

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_configure_while_threads_log_loses_nothing(tmp_path: Path, mode: str) -> None:
    paths = [tmp_path / f"part{i}.log" for i in range(6)]
    kakashi.configure(sink=paths[0], mode=mode)
    log = kakashi.get_logger("reconf")
    stop = threading.Event()
    counts = [0, 0]

    def work(tid: int) -> None:
        i = 0
        while not stop.is_set():
            log.info("x", t=tid, i=i)
            i += 1
        counts[tid] = i

    threads = [threading.Thread(target=work, args=(tid,)) for tid in (0, 1)]
    for t in threads:
        t.start()
    for path in paths[1:]:
        time.sleep(0.05)
        kakashi.configure(sink=path, mode=mode)
    stop.set()
    for t in threads:
        t.join(30)
    kakashi.flush()
    lines = [line for path in paths for line in read_lines(path)]
    by_thread = seq_check(lines)
    assert {tid: sorted(seqs) for tid, seqs in by_thread.items()} == {tid: list(range(counts[tid])) for tid in (0, 1)}


def test_fork_while_another_thread_is_inside_configure(tmp_path: Path) -> None:
    proc = run_python(
        f"""
        import os, sys, threading, time, kakashi
        entered = threading.Event()
        class SlowClose(kakashi.Sink):
            def write(self, data): pass
            def close(self):
                entered.set()
                time.sleep(3)
        kakashi.configure(sink=SlowClose())
        t = threading.Thread(target=kakashi.configure, kwargs={{"sink": {str(tmp_path / "p.log")!r}}})
        t.start()
        entered.wait(10)   # that thread now holds configure()'s lock
        pid = os.fork()
        if pid == 0:
            kakashi.configure(sink={str(tmp_path / "child.log")!r})
            kakashi.get_logger("child").info("configured in the child")
            sys.exit(0)
        start = time.monotonic()
        _, status = os.waitpid(pid, 0)
        t.join()
        sys.exit(0 if os.waitstatus_to_exitcode(status) == 0 and time.monotonic() - start < 7 else 1)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert read_lines(tmp_path / "child.log")[0].endswith("configured in the child")


def test_fork_waits_at_most_two_seconds_for_a_stuck_sink(tmp_path: Path) -> None:
    proc = run_python(
        """
        import os, sys, threading, time, kakashi
        gate, inside = threading.Event(), threading.Event()
        def sink(data):
            if not gate.is_set():
                inside.set()
                gate.wait(30)
        kakashi.configure(sink=sink, batch_size=1000)
        log = kakashi.get_logger("f")
        def work(n):
            for i in range(10):
                log.info("pending", n=n, i=i)
            done.wait(30)
        done = threading.Event()
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads: t.start()
        threading.Thread(target=lambda: log.error("stuck in the sink"), daemon=True).start()
        inside.wait(10)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        took = time.monotonic() - start
        os.waitpid(pid, 0)
        gate.set(); done.set()
        for t in threads: t.join()
        print(round(took, 1))
        sys.exit(0 if took < 3 else 1)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)


def test_multiprocessing_children_and_a_terminated_pool_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mp.log"
    proc = run_python(
        f"""
        import multiprocessing as mp, kakashi
        kakashi.configure(sink={str(path)!r})
        log = kakashi.get_logger("mp")
        def task(n):
            for i in range(5):
                log.info("worker line", t=n, i=i)
        if __name__ == "__main__":
            mp.set_start_method("fork")
            procs = [mp.Process(target=task, args=(n,)) for n in range(4)]
            for p in procs: p.start()
            for p in procs: p.join()
            with mp.Pool(2) as pool:   # leaving the block terminates the workers
                pool.map(task, range(10, 14))
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    by_thread = seq_check(read_lines(path))
    assert by_thread == {n: list(range(5)) for n in (0, 1, 2, 3, 10, 11, 12, 13)}


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_children_of_every_start_method_write_through(tmp_path: Path, method: str) -> None:
    # spawn and forkserver children run no after-fork hooks, and a spawned child runs the
    # main module's configure() again: each child must still have written every record
    # when it dies without any exit handling (SIGKILL; a pool's terminate() is SIGTERM).
    path = tmp_path / "mp.log"
    script = tmp_path / "children.py"
    script.write_text(
        f"""
import multiprocessing as mp, os, signal
import kakashi
kakashi.configure(sink={str(path)!r}, batch_size=1000, flush_interval=60)
log = kakashi.get_logger("mp")

def task(n):
    for i in range(5):
        log.info("worker line", t=n, i=i)
    os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    mp.set_start_method({method!r})
    children = [mp.Process(target=task, args=(n,)) for n in (10, 11)]
    for child in children: child.start()
    for child in children: child.join()
"""
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert seq_check(read_lines(path)) == {10: list(range(5)), 11: list(range(5))}


def test_a_child_that_imports_kakashi_only_in_its_target_writes_through(tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    script = tmp_path / "late.py"
    script.write_text(
        f"""
import multiprocessing as mp, os, signal

def target():
    import kakashi  # first import in this process: after multiprocessing started it
    kakashi.configure(sink={str(path)!r}, batch_size=1000, flush_interval=60)
    log = kakashi.get_logger("late")
    for i in range(15):
        log.info("line", t=1, i=i)
    os.kill(os.getpid(), signal.SIGKILL)  # no exit handling at all

if __name__ == "__main__":
    mp.set_start_method("spawn")
    p = mp.Process(target=target)
    p.start()
    p.join()
"""
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert seq_check(read_lines(path)) == {1: list(range(15))}


def test_async_sink_that_logs_does_not_loop_or_wait_for_itself() -> None:
    writes = []
    log = kakashi.get_logger("loop")

    def chatty(data: str) -> None:
        writes.append(data)
        log.error("from inside the sink")  # would wait for the worker, which is us
        log.info("and again")

    kakashi.configure(sink=chatty, mode="async")
    start = time.monotonic()
    log.info("one record")
    assert kakashi.flush(timeout=5)
    time.sleep(0.3)
    assert time.monotonic() - start < 3 and len(writes) == 1
    before = kakashi.stats()["dropped"]
    kakashi.configure(sink=writes.append)
    log.info("after")
    kakashi.flush()
    assert "kakashi dropped 2 records logged from inside a sink (they would loop)" in writes[-1]
    assert before >= 2


def test_custom_levels_write_through_after_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    proc = run_python(
        f"""
        import os, signal, kakashi
        kakashi.configure(sink={str(path)!r})
        log = kakashi.get_logger("c")
        kakashi.shutdown()
        log.log(25, "custom level")
        log.info("named level")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert proc.returncode == -9
    assert [line.split(": ", 1)[1] for line in read_lines(path)] == ["custom level", "named level"]


def test_json_records_under_a_nested_secret_are_redacted(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.get_logger("n").info(
        "req", headers={"Authorization": "Bearer x", "Accept": "a"}, settings={"db": [{"password": "hunter2"}]}
    )
    kakashi.flush()
    record = json.loads(read_lines(log_path)[0])
    assert record["headers"] == {"Authorization": "[REDACTED]", "Accept": "a"}
    assert record["settings"] == {"db": [{"password": "[REDACTED]"}]}


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_ints_too_long_to_print_become_a_placeholder(log_path: Path, fmt: str) -> None:
    kakashi.configure(sink=log_path, format=fmt)
    big = 10**5000
    kakashi.bind_context(ctx_big=big)
    kakashi.get_logger("big").bind(bound_big=big).info("m", big=big, listed=[big], ok=1)
    kakashi.clear_context()
    kakashi.flush()
    (line,) = read_lines(log_path)
    assert line.count("<int of 16610 bits>") == 4 and ("ok=1" in line or '"ok":1' in line)
    if fmt == "json":
        assert json.loads(line)["listed"] == ["<int of 16610 bits>"]


def test_unusable_streams_fail_in_configure(tmp_path: Path) -> None:
    import sys

    binary = open(tmp_path / "b.bin", "wb")  # noqa: SIM115
    closed = open(tmp_path / "c.txt", "w")  # noqa: SIM115
    closed.close()
    read_only = open(tmp_path / "b.bin")  # noqa: SIM115
    try:
        with pytest.raises(TypeError, match="is binary; kakashi writes text"):
            kakashi.configure(sink=binary)
        with pytest.raises(TypeError, match="is binary"):
            kakashi.configure(sink=sys.stdout.buffer)
        with pytest.raises(ValueError, match="is closed"):
            kakashi.configure(sink=closed)
        with pytest.raises(ValueError, match="is not writable"):
            kakashi.configure(sink=read_only)
        with pytest.raises(ValueError, match="trace_ids must be 'auto', True or False, got 1"):
            kakashi.configure(trace_ids=1)  # type: ignore[arg-type]
    finally:
        binary.close()
        read_only.close()


def test_a_disk_filling_mid_write_keeps_lines_whole_and_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "full.log"
    proc = run_python(
        f"""
        import json, resource, signal, kakashi
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        kakashi.configure(sink={str(path)!r}, batch_size=10, format="json")
        log = kakashi.get_logger("full")
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # the disk fills at 1000 bytes
        for i in range(10):
            log.info("record", i=i, pad="x" * 40)
        stats = kakashi.stats()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.info("after", i=99)
        kakashi.flush()
        print(stats["written"], stats["dropped"])
        """
    )
    assert proc.returncode == 0
    written, dropped = map(int, proc.stdout.split())
    assert written + dropped == 10 and 0 < written < 10
    lines = read_lines(path)
    assert json.loads(lines[-1])["message"] == "after"
    parsed = [json.loads(line) for line in lines if line.startswith('{"') and line.endswith("}")]
    assert len(parsed) >= written + 2  # whole records, the loss notice, and the last line
    assert sum("kakashi lost" in r["message"] for r in parsed) == 1


def test_batches_of_replaced_sinks_leave_the_registry(tmp_path: Path) -> None:
    from kakashi import _engine

    log = kakashi.get_logger("many")
    for i in range(30):
        kakashi.configure(sink=tmp_path / f"{i}.log")
        log.info("x", i=i)
    kakashi.flush()
    before = len(_engine._registry)
    _engine.Flusher().tick(time.monotonic() + _engine.RETIRED_BATCH_AGE + 1)
    assert before >= 30 and len(_engine._registry) <= 2
    log.info("still logged")
    kakashi.flush()
    assert read_lines(tmp_path / "29.log")[-1].endswith("still logged")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("alternate", [False, True], ids=["same-file", "two-files"])
def test_configure_200_times_under_four_threads_loses_nothing_and_counts_exactly(
    tmp_path: Path, alternate: bool
) -> None:
    # Small batches: threads meet each other at the sink lock all the time, so lines wait
    # in the pending list of a route that configure() is retiring.
    files = [tmp_path / "a.log", tmp_path / "b.log"]
    kakashi.configure(sink=files[0], format="json", batch_size=8)
    before = kakashi.stats()
    log = kakashi.get_logger("reconf")
    stop = threading.Event()
    start = threading.Barrier(5)
    counts = [0] * 4

    def work(tid: int) -> None:
        start.wait()
        i = 0
        while not stop.is_set() and i < 150_000:
            log.info("x", t=tid, i=i)
            i += 1
        counts[tid] = i

    threads = [threading.Thread(target=work, args=(tid,)) for tid in range(4)]
    for t in threads:
        t.start()
    start.wait()
    for k in range(200):
        kakashi.configure(sink=files[k % 2] if alternate else files[0], format="json", batch_size=8)
        stats = kakashi.stats()
        assert stats["records"] == stats["written"] + stats["dropped"] + stats["pending"]
    stop.set()
    for t in threads:
        t.join(60)
    assert kakashi.flush()
    seen: dict[int, list[int]] = {}
    for path in files:
        for line in read_lines(path) if path.exists() else []:
            record = json.loads(line)  # (a torn line would not parse)
            seen.setdefault(record["t"], []).append(record["i"])
    assert {tid: sorted(seqs) for tid, seqs in seen.items()} == {tid: list(range(counts[tid])) for tid in range(4)}
    stats = kakashi.stats()
    total = sum(counts)
    assert stats["pending"] == 0
    assert [stats[key] - before[key] for key in ("records", "written", "dropped")] == [total, total, 0]

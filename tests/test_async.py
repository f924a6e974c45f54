"""Async mode: one worker, a bounded queue, overflow policies that never drop silently, values
captured at call time, fork."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import kakashi

from conftest import read_lines, run_python, seq_check

pytestmark = pytest.mark.timeout(60)


def records(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def test_get_async_logger_is_async_and_shares_the_level() -> None:
    alog = kakashi.get_async_logger("a.shared")
    slog = kakashi.get_logger("a.shared")
    assert alog.is_async and not slog.is_async and alog is not slog
    slog.set_level("ERROR")
    assert alog.level == kakashi.ERROR


@pytest.mark.timeout(120)
def test_sixteen_threads_block_policy_nothing_dropped(log_path: Path) -> None:
    threads_n, per_thread = 16, 10_000
    kakashi.configure(sink=log_path, mode="async", overflow="block", queue_size=1000, batch_size=64)
    log = kakashi.get_logger("threads")
    barrier = threading.Barrier(threads_n)
    before = kakashi.stats()

    def work(tid: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            log.info("line", t=tid, i=i)

    threads = [threading.Thread(target=work, args=(tid,)) for tid in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert kakashi.flush()
    by_thread = seq_check(read_lines(log_path))
    assert {tid: len(seqs) for tid, seqs in by_thread.items()} == dict.fromkeys(range(threads_n), per_thread)
    assert all(seqs == list(range(per_thread)) for seqs in by_thread.values())
    assert kakashi.stats()["dropped"] == before["dropped"]


class SlowSink:
    """Takes 2 ms per write call, like a slow disk or a network hop."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def __call__(self, data: str) -> None:
        time.sleep(0.002)
        self.data.append(data)

    def lines(self) -> list[str]:
        return "".join(self.data).splitlines()


def test_block_delivers_everything_through_a_tiny_queue() -> None:
    sink = SlowSink()
    kakashi.configure(sink=sink, mode="async", queue_size=4, batch_size=8, overflow="block", format="json")
    log = kakashi.get_logger("queue")
    for i in range(1024):
        log.info("rec", i=i)
    assert kakashi.flush()
    assert [r["i"] for r in records(sink.lines())] == list(range(1024))


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_drop_policies_count_and_announce_every_drop(policy: str) -> None:
    sink = SlowSink()
    kakashi.configure(sink=sink, mode="async", queue_size=4, batch_size=8, overflow=policy, format="json")
    log = kakashi.get_logger("queue")
    before = kakashi.stats()["dropped"]
    for i in range(1024):
        if i % 100 == 99:
            log.error("rec", i=i)  # errors wait; they are never dropped
        else:
            log.info("rec", i=i)
    assert kakashi.flush()
    got = records(sink.lines())
    delivered = [r["i"] for r in got if r["logger"] == "queue"]
    notices = [r["message"] for r in got if r["logger"] == "kakashi"]
    dropped = kakashi.stats()["dropped"] - before
    assert len(delivered) + dropped == 1024 and dropped > 0
    assert delivered == sorted(delivered) and len(set(delivered)) == len(delivered)
    assert all(i in delivered for i in range(99, 1024, 100))
    announced = sum(int(m.split()[2].replace(",", "")) for m in notices)
    assert announced == dropped
    assert all(m.startswith("kakashi dropped ") and m.endswith(f" records (overflow={policy})") for m in notices)


def test_flush_is_a_barrier(log_path: Path) -> None:
    kakashi.configure(sink=log_path, mode="async", max_latency=5.0, batch_size=1000)
    log = kakashi.get_logger("barrier")
    for i in range(250):
        log.info("x", t=0, i=i)
        if i % 50 == 49:
            assert kakashi.flush()
            assert len(read_lines(log_path)) == i + 1


def test_shutdown_drains_twice_safe_and_bounded_on_a_stuck_sink(log_path: Path) -> None:
    kakashi.configure(sink=log_path, mode="async")
    log = kakashi.get_logger("shutdown")
    for i in range(100):
        log.info("x", t=0, i=i)
    kakashi.shutdown()
    kakashi.shutdown()
    assert seq_check(read_lines(log_path))[0] == list(range(100))

    gate = threading.Event()

    def stuck(data: str) -> None:
        gate.wait(30)

    kakashi.configure(sink=stuck, mode="async", queue_size=4, overflow="drop_newest")
    for i in range(50):
        log.info("x", i=i)
    start = time.monotonic()
    kakashi.shutdown(timeout=1.0)
    assert time.monotonic() - start < 5
    gate.set()


def test_async_after_fork(log_path: Path) -> None:
    proc = run_python(
        f"""
        import os, sys, threading, kakashi
        gate = threading.Event()
        def sink(data):
            gate.wait(20)
            with open({str(log_path)!r}, "a") as f:
                f.write(data)
        kakashi.configure(sink=sink, mode="async", batch_size=10)
        log = kakashi.get_logger("fork")
        for i in range(50):
            log.info("parent", t=0, i=i)   # queued, the worker is held in the sink
        pid = os.fork()
        if pid == 0:
            gate.set()
            for i in range(5):
                log.info("child", t=1, i=i)
            sys.exit(0)                     # exit drains the child's own queue
        _, status = os.waitpid(pid, 0)
        gate.set()
        kakashi.flush()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert seq_check(read_lines(log_path)) == {0: list(range(50)), 1: list(range(5))}


def test_field_values_are_captured_at_call_time() -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, mode="async", format="json", max_latency=1.0)
    log = kakashi.get_logger("capture")
    data = {"n": 1, "items": [1]}

    class Counter:
        value = 0

        def __str__(self) -> str:
            return f"counter={self.value}"

    counter = Counter()
    log.info("snapshot", data=data, items=data["items"], obj=counter, pair=(1, [2]))
    data["n"] = 2
    data["items"].append(2)  # type: ignore[attr-defined]
    counter.value = 5
    assert kakashi.flush()
    (record,) = records("".join(got).splitlines())
    assert record["data"] == {"n": 1, "items": [1]} and record["items"] == [1]
    assert record["obj"] == "counter=0" and record["pair"] == [1, [2]]


def test_async_error_is_written_before_the_call_returns() -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, mode="async", max_latency=5.0, batch_size=1000)
    log = kakashi.get_logger("err")
    log.info("before")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    text = "".join(got)
    assert "INFO err: before" in text and "ERROR err: failed" in text and "ValueError: bad" in text


def test_async_thread_lines_arrive_without_flush(log_path: Path) -> None:
    kakashi.configure(sink=log_path, mode="async", max_latency=0.05)
    log = kakashi.get_logger("thread")
    t = threading.Thread(target=lambda: [log.info("x", t=0, i=i) for i in range(5)])
    t.start()
    t.join(10)
    deadline = time.monotonic() + 5
    while len(read_lines(log_path)) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seq_check(read_lines(log_path)) == {0: list(range(5))}


def test_async_failing_sink_is_counted_reported_and_the_worker_survives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = {"fail": True}
    good: list[str] = []

    def sink(data: str) -> None:
        if state["fail"]:
            raise OSError(28, "No space left on device")
        good.append(data)

    kakashi.configure(sink=sink, mode="async", batch_size=10)
    log = kakashi.get_logger("failing")
    before = kakashi.stats()
    for i in range(30):
        log.info("lost", i=i)
    assert kakashi.flush()
    assert kakashi.stats()["dropped"] - before["dropped"] == 30
    assert capsys.readouterr().err.count("failed (OSError: [Errno 28] No space left on device)") == 1
    state["fail"] = False
    log.info("back")
    assert kakashi.flush()
    lines = "".join(good).splitlines()
    assert "kakashi lost 30 records" in lines[0] and lines[-1].endswith("INFO failing: back")


def test_async_worker_survives_a_broken_value() -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, mode="async")

    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("nope")

    log = kakashi.get_logger("w")
    log.info("first", v=Bad())
    log.info("second")
    assert kakashi.flush()
    text = "".join(got)
    assert 'first v="<unprintable Bad: RuntimeError>"' in text and "second" in text


@pytest.mark.parametrize("ending", ["pass", "sys.exit(3)", "raise RuntimeError('boom')"])
def test_async_exit_without_shutdown_writes_everything(log_path: Path, ending: str) -> None:
    proc = run_python(
        f"""
import sys, threading, kakashi
kakashi.configure(sink={str(log_path)!r}, mode="async", queue_size=100)
log = kakashi.get_logger("exit")
def work(tid):
    for i in range(3000):
        log.info("x", t=tid, i=i)
threads = [threading.Thread(target=work, args=(tid,)) for tid in range(4)]
for t in threads: t.start()
for t in threads: t.join()
for i in range(1000):
    log.info("x", t=9, i=i)
{ending}
"""
    )
    assert proc.returncode == {"pass": 0, "sys.exit(3)": 3}.get(ending, 1)
    assert "kakashi" not in proc.stderr
    by_thread = seq_check(read_lines(log_path))
    assert by_thread == {**{tid: list(range(3000)) for tid in range(4)}, 9: list(range(1000))}


def test_async_invalid_options_fail_in_configure() -> None:
    with pytest.raises(ValueError, match="unknown overflow 'drop_all'; valid: block, drop_newest, drop_oldest"):
        kakashi.configure(mode="async", overflow="drop_all")
    with pytest.raises(ValueError, match="unknown mode 'threads'; valid: sync, async"):
        kakashi.configure(mode="threads")
    with pytest.raises(ValueError, match="queue_size must be at least 1, got 0"):
        kakashi.configure(mode="async", queue_size=0)
    with pytest.raises(ValueError, match="max_latency must be a positive finite number of seconds"):
        kakashi.configure(mode="async", max_latency=-1)


class StuckSink(kakashi.Sink):
    """Writes its first ``free`` batches, then blocks inside write() until released."""

    def __init__(self, free: int = 0) -> None:
        super().__init__()
        self.name = "stuck"
        self.free = free
        self.entered = threading.Event()
        self.release = threading.Event()
        self.got: list[str] = []

    def write(self, data: str) -> None:
        if self.free:
            self.free -= 1
        else:
            self.entered.set()
            self.release.wait(60)
        self.got.append(data)


def test_a_stuck_sink_costs_the_caller_once_and_every_record_is_counted() -> None:
    sink = StuckSink()
    kakashi.configure(sink=sink, mode="async", format="json")
    log = kakashi.get_logger("stuck")
    before = kakashi.stats()
    log.info("in flight", i=0)
    assert sink.entered.wait(10)  # the worker is inside write() with that record
    for i in range(1, 10):
        log.info("queued", i=i)
    began = time.monotonic()
    kakashi.shutdown(timeout=1)
    assert time.monotonic() - began < 2.5
    # Known stuck now: write-through calls neither wait for it nor lose count.
    began = time.monotonic()
    for i in range(10, 15):
        log.info("after", i=i)
    log.error("an error too", i=15)
    assert time.monotonic() - began < 0.5
    stats = kakashi.stats()
    delta = {key: stats[key] - before[key] for key in ("records", "written", "dropped")}
    assert delta == {"records": 16, "written": 0, "dropped": 15} and stats["pending"] == 1  # the one in flight
    sink.release.set()
    deadline = time.monotonic() + 10
    while len(sink.got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    got = records("".join(sink.got).splitlines())
    assert [r.get("i") for r in got if r["logger"] == "stuck"] == [0]
    assert [r["message"] for r in got if r["logger"] == "kakashi"] == [
        "kakashi dropped 15 records while the sink was stuck in a write"
    ]
    stats = kakashi.stats()
    assert (stats["written"] - before["written"], stats["pending"]) == (1, 0)


def test_a_shutdown_report_never_shows_a_negative_duration(capfd: pytest.CaptureFixture[str]) -> None:
    sink = StuckSink()
    kakashi.configure(sink=sink, mode="async")
    kakashi.get_logger("stuck").info("x")
    assert sink.entered.wait(10)
    kakashi.shutdown(timeout=0.3)
    sink.release.set()
    err = capfd.readouterr().err
    assert "kakashi: " in err and "-0." not in err and "for -" not in err


@pytest.mark.timeout(120)
def test_at_exit_a_slow_sink_gets_every_queued_record(tmp_path: Path) -> None:
    path = tmp_path / "slow.log"
    proc = run_python(
        f"""
        import time, kakashi
        class Slow(kakashi.Sink):
            def __init__(self):
                super().__init__()
                self.file = open({str(path)!r}, "a")
            def write(self, data):
                time.sleep(0.05)  # 50 ms a write: 10,000 records take about 5 s
                self.file.write(data)
                self.file.flush()
        kakashi.configure(sink=Slow(), mode="async", format="json")
        log = kakashi.get_logger("slow")
        for i in range(10_000):
            log.info("x", i=i)
        """,
        timeout=100,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [json.loads(line)["i"] for line in read_lines(path)] == list(range(10_000))


@pytest.mark.timeout(120)
def test_at_exit_a_sink_that_stops_making_progress_is_given_up_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "stuck.log"
    proc = run_python(
        f"""
        import sys, threading, kakashi
        class Stops(kakashi.Sink):
            def __init__(self):
                super().__init__()
                self.writes = 0
                self.file = open({str(path)!r}, "a")
            def write(self, data):
                self.writes += 1
                if self.writes > 2:
                    threading.Event().wait()  # never returns
                self.file.write(data)
                self.file.flush()
        kakashi.configure(sink=Stops(), mode="async", batch_size=10)
        log = kakashi.get_logger("stops")
        for i in range(100):
            log.info("x", t=0, i=i)
        sys.exit(3)
        """,
        timeout=100,
    )
    assert proc.returncode == 3
    written = seq_check(read_lines(path))[0]
    assert written == list(range(len(written))) and 0 < len(written) < 100
    queued = int(proc.stderr.split("gave up (the sink wrote nothing for 5s); ")[1].split()[0])
    in_write = int(proc.stderr.split("kakashi: ")[-1].split()[0])
    assert "records were not written before exit" in proc.stderr
    assert len(written) + queued + in_write == 100, proc.stderr

"""The edges, each in a fresh interpreter: exit, kill, fork (also during a flush),
thread exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import read_lines, run_python, seq_check

pytestmark = pytest.mark.timeout(60)

PRELUDE = """
import os, sys, threading, time
import kakashi
PATH = {path!r}
kakashi.configure(sink=PATH, batch_size={batch}, flush_interval={interval})
log = kakashi.get_logger("edge")
"""


def prelude(path: Path, batch: int = 100, interval: float = 1000.0) -> str:
    return PRELUDE.format(path=str(path), batch=batch, interval=interval)


def assert_prefix(seqs: list[int]) -> None:
    assert seqs == list(range(len(seqs))), "not a clean prefix (gap, duplicate or reorder)"


@pytest.mark.parametrize(
    ("ending", "code"),
    [("return", "pass"), ("sys.exit(3)", "sys.exit(3)"), ("uncaught", "raise RuntimeError('boom')")],
)
def test_exit_writes_every_line_once(log_path: Path, ending: str, code: str) -> None:
    proc = run_python(
        prelude(log_path)
        + f"""
logging_started = threading.Event()

def daemon():
    i = 0
    while True:
        log.info("daemon", t=1, i=i)
        i += 1
        logging_started.set()
        if i % 1000 == 0:
            time.sleep(0.001)

def worker():
    for i in range(250):
        log.info("worker", t=2, i=i)

threading.Thread(target=daemon, daemon=True).start()
# (On a busy machine the daemon can stay without the GIL until the program ends, and then
# have no lines to lose: make sure it is logging first.)
logging_started.wait(10)
w = threading.Thread(target=worker)
w.start(); w.join()
for i in range(250):
    log.info("main", t=0, i=i)
{code}
"""
    )
    expected_rc = {"return": 0, "sys.exit(3)": 3, "uncaught": 1}[ending]
    assert proc.returncode == expected_rc
    if ending == "uncaught":
        assert proc.stderr.startswith("Traceback") and proc.stderr.rstrip().endswith("RuntimeError: boom")
        assert "kakashi" not in proc.stderr
    else:
        assert proc.stderr == ""
    by_thread = seq_check(read_lines(log_path))
    assert by_thread[0] == list(range(250)) and by_thread[2] == list(range(250))
    assert_prefix(by_thread[1])
    assert len(by_thread[1]) > 0


def test_main_thread_lines_without_any_other_thread(log_path: Path) -> None:
    proc = run_python(prelude(log_path) + "for i in range(7):\n    log.info('only', t=0, i=i)\n")
    assert proc.returncode == 0 and proc.stderr == ""
    assert seq_check(read_lines(log_path))[0] == list(range(7))


def test_os_exit_leaves_a_clean_prefix_within_the_batch_bound(log_path: Path) -> None:
    proc = run_python(
        prelude(log_path, batch=50)
        + """
def work(tid):
    for i in range(1030):
        log.info("x", t=tid, i=i)
    done.wait()
done = threading.Event()
threads = [threading.Thread(target=work, args=(tid,)) for tid in (1, 2)]
for t in threads: t.start()
for i in range(1030):
    log.info("x", t=0, i=i)
time.sleep(0.2)
os._exit(0)
"""
    )
    assert proc.returncode == 0
    by_thread = seq_check(read_lines(log_path))  # read_lines asserts no torn last line
    for tid in (0, 1, 2):
        assert_prefix(by_thread[tid])
        assert 1030 - 50 < len(by_thread[tid]) <= 1030  # at most one batch lost per thread


def test_sigkill_leaves_a_clean_prefix(log_path: Path) -> None:
    code = (
        prelude(log_path, batch=20, interval=0.05)
        + """
def work(tid):
    i = 0
    while True:
        log.info("x", t=tid, i=i, pad="p" * (i % 300))
        i += 1
for tid in (1, 2):
    threading.Thread(target=work, args=(tid,), daemon=True).start()
print("ready", flush=True)
work(0)
"""
    )
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 30

        def all_threads_written() -> bool:
            if not log_path.exists() or log_path.stat().st_size < 200_000:
                return False
            data = log_path.read_bytes()
            return all(f" t={tid} ".encode() in data for tid in (0, 1, 2))

        while not all_threads_written() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(20)
    assert proc.returncode == -signal.SIGKILL
    # SIGKILL can stop a write(2) between two pages of the page cache (the kernel checks for
    # a fatal signal per page), so the very last line may be cut; every line before it is
    # whole and each thread's lines are a clean prefix.
    data = log_path.read_bytes().decode()
    lines = data.splitlines()
    if not data.endswith("\n"):
        lines = lines[:-1]
    by_thread = seq_check(lines, r"t=(\d+) i=(\d+) pad=(p*|\"\")$")
    assert set(by_thread) == {0, 1, 2}
    for seqs in by_thread.values():
        assert_prefix(seqs)


def test_fork_writes_each_parent_line_once_and_the_child_line_once(log_path: Path) -> None:
    proc = run_python(
        prelude(log_path)
        + """
ready, release = threading.Event(), threading.Event()
def other():
    for i in range(5):
        log.info("other", t=1, i=i)
    ready.set()
    release.wait(30)
t = threading.Thread(target=other); t.start(); ready.wait(30)
for i in range(5):
    log.info("main", t=0, i=i)
pid = os.fork()
if pid == 0:
    log.info("child", t=2, i=0)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
release.set(); t.join()
log.info("parent after fork", t=0, i=5)
"""
    )
    assert proc.returncode == 0, proc.stderr
    by_thread = seq_check(read_lines(log_path))
    assert by_thread == {0: list(range(6)), 1: list(range(5)), 2: [0]}


def test_child_keeps_logging_in_threads_and_stats_start_fresh(log_path: Path) -> None:
    proc = run_python(
        prelude(log_path, interval=0.1)
        + """
log.info("pre", t=0, i=0)
pid = os.fork()
if pid == 0:
    def work():
        for i in range(3):
            log.info("child thread", t=3, i=i)
    th = threading.Thread(target=work); th.start(); th.join()
    log.info("child main", t=2, i=0)
    time.sleep(0.5)  # the child's own flusher writes this without any flush call
    n = sum(1 for _ in open(PATH))
    os._exit(0 if n == 5 and kakashi.stats()["written"] == 4 else 7)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    )
    assert proc.returncode == 0, proc.stderr
    assert seq_check(read_lines(log_path)) == {0: [0], 2: [0], 3: [0, 1, 2]}


def test_fork_while_another_thread_is_inside_a_flush(log_path: Path) -> None:
    proc = run_python(
        f"""
import os, sys, threading, time
import kakashi
slow = threading.Event()
inside = threading.Event()
def sink(data):
    if slow.is_set():
        inside.set()
        time.sleep(4)
    with open({str(log_path)!r}, "a") as f:
        f.write(data)
kakashi.configure(sink=sink, batch_size=100, flush_interval=1000)
log = kakashi.get_logger("fork")
slow.set()
t = threading.Thread(target=lambda: log.error("slow write", t=1, i=0))
t.start()
inside.wait(10)
start = time.monotonic()
pid = os.fork()
if pid == 0:
    slow.clear()
    log.info("child", t=2, i=0)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
took = time.monotonic() - start
t.join()
print(os.waitstatus_to_exitcode(status), round(took, 1))
sys.exit(0 if took < 7 else 9)
""",
        timeout=40,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout.split()[0] == "0"
    assert seq_check(read_lines(log_path)) == {1: [0], 2: [0]}


def test_thread_exit_in_a_pool_of_short_threads(log_path: Path) -> None:
    proc = run_python(
        prelude(log_path)
        + """
def work(tid):
    for i in range(3):
        log.info("short", t=tid, i=i)
for tid in range(50):
    th = threading.Thread(target=work, args=(tid,)); th.start(); th.join()
n = sum(1 for _ in open(PATH))
os._exit(0 if n == 150 else 5)  # no atexit: the thread exits alone wrote everything
"""
    )
    assert proc.returncode == 0
    by_thread = seq_check(read_lines(log_path))
    assert all(by_thread[tid] == [0, 1, 2] for tid in range(50))


@pytest.mark.skipif(sys.platform != "linux", reason="uses os.fork semantics of Linux")
def test_no_kakashi_threads_block_exit_when_idle(log_path: Path) -> None:
    start = time.monotonic()
    proc = run_python(prelude(log_path, interval=1000) + "log.info('x', t=0, i=0)\n")
    assert proc.returncode == 0 and time.monotonic() - start < 10
    assert os.path.getsize(log_path) > 0

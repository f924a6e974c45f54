"""Sinks and their failures: full disk, many processes on one file."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kakashi

from conftest import read_lines, run_python


class FullDisk:
    """A file object that fails with ENOSPC while ``full`` is set."""

    def __init__(self) -> None:
        self.full = True
        self.data: list[str] = []

    def write(self, data: str) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data.append(data)


def test_full_disk_is_reported_once_counted_and_recovers(capsys: pytest.CaptureFixture[str]) -> None:
    disk = FullDisk()
    kakashi.configure(sink=disk, batch_size=10, flush_interval=1000)
    before = kakashi.stats()
    log = kakashi.get_logger("disk")
    for i in range(100):
        log.info("lost", i=i)  # never raises
    log.error("also lost")
    mid = kakashi.stats()
    assert mid["dropped"] - before["dropped"] == 101
    assert mid["sink_errors"] - before["sink_errors"] == 11
    err = capsys.readouterr().err.splitlines()
    assert err == ["kakashi: sink 'FullDisk' failed (OSError: [Errno 28] No space left on device); 10 records dropped"]
    disk.full = False
    log.info("back")
    kakashi.flush()
    lines = "".join(disk.data).splitlines()
    assert lines[0].endswith("WARNING kakashi: kakashi lost 101 records: the sink failed (see stats())")
    assert lines[1].endswith("INFO disk: back") and len(lines) == 2
    assert kakashi.stats()["written"] - mid["written"] == 1


def test_dev_full_in_a_subprocess() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    proc = run_python(
        """
        import kakashi
        kakashi.configure(sink="/dev/full", batch_size=5)
        log = kakashi.get_logger("full")
        for i in range(50):
            log.info("into the void", i=i)
        log.error("error too")
        s = kakashi.stats()
        print(s["dropped"], s["sink_errors"])
        """
    )
    assert proc.returncode == 0
    assert proc.stdout.split() == ["51", "11"]
    assert proc.stderr.splitlines() == [
        "kakashi: sink '/dev/full' failed (OSError: [Errno 28] No space left on device); 5 records dropped"
    ]


@pytest.mark.parametrize("stderr", ["None", "Broken()"])
def test_missing_or_broken_stderr_stays_silent(stderr: str) -> None:
    proc = run_python(
        f"""
        import sys, kakashi
        class Broken:
            def write(self, data): raise OSError(5, "EIO")
            def flush(self): raise OSError(5, "EIO")
        def failing(data): raise OSError(28, "full")
        kakashi.configure(sink=failing, batch_size=2)
        sys.stderr = {stderr}
        log = kakashi.get_logger("silent")
        for i in range(10):
            log.info("x", i=i)
        log.critical("y")
        print(kakashi.stats()["dropped"])
        sys.stderr = sys.__stderr__  # else the interpreter's own exit flush fails (exit 120)
        """
    )
    assert proc.returncode == 0 and proc.stdout == "11\n" and proc.stderr == ""


def test_stderr_sink_with_broken_stderr_does_not_raise() -> None:
    proc = run_python(
        """
        import sys, kakashi
        kakashi.configure(sink="stderr", batch_size=1)
        sys.stderr = None
        kakashi.get_logger("x").info("nowhere to go")
        print(kakashi.stats()["dropped"])
        """
    )
    assert proc.returncode == 0 and proc.stdout == "1\n"


def test_file_sink_reopens_after_close_and_appends(log_path: Path) -> None:
    log_path.write_text("existing\n")
    sink = kakashi.FileSink(log_path)
    sink.write("one\n")
    sink.close()
    sink.close()
    sink.write("two\n")
    sink.close()
    assert read_lines(log_path) == ["existing", "one", "two"]


def test_sink_classes_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="unknown stream 'stdin'"):
        kakashi.StreamSink("stdin")
    with pytest.raises(TypeError, match="stream must have a write"):
        kakashi.StreamSink(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="func must be callable"):
        kakashi.CallableSink("nope")  # type: ignore[arg-type]


def test_stream_sink_survives_an_encoding_that_cannot_take_the_text(tmp_path: Path) -> None:
    path = tmp_path / "ascii.log"
    with open(path, "w", encoding="ascii") as stream:
        kakashi.configure(sink=stream)
        kakashi.get_logger("enc").info("grüße")
        kakashi.flush()
        kakashi.configure()
    assert read_lines(path)[0].endswith("INFO enc: gr\\u00fc\\u00dfe")


def test_json_to_a_stream_that_cannot_take_the_text_is_still_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "ascii.json"
    with open(path, "w", encoding="ascii") as stream:
        kakashi.configure(sink=stream, format="json")
        kakashi.get_logger("enc").info("café \U0001f600", user="josé")
        kakashi.flush()
        kakashi.configure()
    (line,) = read_lines(path)
    assert line.isascii() and "\\u00e9" in line and "\\ud83d\\ude00" in line
    record = json.loads(line)
    assert (record["message"], record["user"]) == ("café \U0001f600", "josé")


@pytest.mark.timeout(180)
def test_eight_processes_append_whole_lines_to_one_file(log_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, kakashi
        proc = int(sys.argv[1])
        kakashi.configure(sink=sys.argv[2], batch_size=50)
        log = kakashi.get_logger("procs")
        for i in range(2000):
            size = 1000 + (i * 7919 + proc * 104729) % 9000
            log.info("big", p=proc, i=i, n=size, body=chr(97 + proc) * size)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p), str(log_path)]) for p in range(8)]
    for p in procs:
        assert p.wait(150) == 0
    lines = read_lines(log_path)
    assert len(lines) == 16_000
    seqs: dict[int, list[int]] = {}
    for line in lines:
        head, body = line.rsplit(" body=", 1)
        fields = dict(part.split("=", 1) for part in head.split(": big ", 1)[1].split(" "))
        proc, i, size = int(fields["p"]), int(fields["i"]), int(fields["n"])
        assert body == chr(97 + proc) * size, f"torn or mixed line from process {proc}, record {i}"
        seqs.setdefault(proc, []).append(i)
    assert all(seqs[p] == list(range(2000)) for p in range(8))


@pytest.mark.parametrize("sink", ["stdout", "/dev/stdout"])
@pytest.mark.timeout(120)
def test_processes_sharing_one_pipe_never_tear_a_line(sink: str) -> None:
    # Container logs: gunicorn or uvicorn workers all write to one stdout pipe. Linux keeps a
    # pipe write whole only up to PIPE_BUF (4096) bytes, and a batch is bigger than that.
    code = textwrap.dedent(
        """
        import sys, kakashi
        proc = int(sys.argv[1])
        kakashi.configure(sink=sys.argv[2], format="json", batch_size=100)
        log = kakashi.get_logger("pipe")
        for i in range(5000):
            log.info("record", p=proc, i=i, body="x" * (150 + (i * 7919 + proc) % 200) + "é" * (i % 3))
        """
    )
    read_end, write_end = os.pipe()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p), sink], stdout=write_end) for p in range(4)]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    assert all(p.wait(60) == 0 for p in procs)
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 20_000
    seqs: dict[int, list[int]] = {}
    for line in lines:
        record = json.loads(line)  # a torn or interleaved line is not JSON
        seqs.setdefault(record["p"], []).append(record["i"])
    assert seqs == {p: list(range(5000)) for p in range(4)}


@given(
    lines=st.lists(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=300), max_size=60),
    limit=st.integers(min_value=16, max_value=4096),
)
def test_pipe_pieces_are_whole_lines_within_the_limit(lines: list[str], limit: int) -> None:
    from kakashi._sinks import pipe_pieces

    data = "".join(line + "\n" for line in lines)
    pieces = pipe_pieces(data, limit)
    assert "".join(pieces) == data
    for piece in pieces:
        assert piece.endswith("\n")
        size = len(piece.encode("utf-8", "backslashreplace"))
        assert size <= limit or piece.count("\n") == 1  # only a single long line may exceed it

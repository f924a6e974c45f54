"""RotatingFileSink: a rotation run counted line by line; time-based rotation; bad options."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest

import kakashi

from conftest import seq_check


def all_lines(path: Path) -> list[str]:
    """The rotated files, oldest first, then the live one."""
    lines: list[str] = []
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.name.split(".")[2]), reverse=True)
    for backup in backups:
        data = gzip.decompress(backup.read_bytes()) if backup.suffix == ".gz" else backup.read_bytes()
        text = data.decode()
        assert text.endswith("\n"), f"{backup.name} ends in a torn line"
        lines += text.splitlines()
    if path.exists():
        lines += path.read_text().splitlines()
    return lines


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


def test_backup_count_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    sink = kakashi.RotatingFileSink(path, max_bytes=100, backup_count=2)
    for i in range(10):
        sink.write(f"record {i} " + "x" * 80 + "\n")
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "app.log.1", "app.log.2"]
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

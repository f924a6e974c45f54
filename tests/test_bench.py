"""The benchmark runner works end to end and counts lost lines (tiny sizes; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kakashi import bench


@pytest.mark.timeout(120)
def test_bench_runs_and_counts_lines(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kakashi.bench",
            "-n",
            "2000",
            "--repeats",
            "1",
            "--libs",
            "stdlib,kakashi",
            "--cases",
            "plain,fields,filtered,threads4,memory",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    assert "INFO to a file" in proc.stdout and "vs stdlib" in proc.stdout
    results = json.loads(out.read_text())
    assert {(r["lib"], r["case"]) for r in results} >= {
        ("kakashi", "plain"),
        ("stdlib", "plain"),
        ("kakashi", "memory"),
    }
    assert all(r["lost"] == 0 and not r["failure"] and len(r["ns"]) == 1 for r in results)


def test_bench_marks_a_library_that_loses_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run whose output file holds fewer lines than it reported is shown as lost.
    def fake_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        cmd = args[0]
        Path(cmd[-1]).write_text("one line\n")  # type: ignore[index]
        return subprocess.CompletedProcess(cmd, 0, json.dumps({"ns_per_call": 10.0, "expected": 5}), "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    results = bench.measure([(sys.executable, "stdlib", "plain")], 10, 3, 5)
    assert results[0].lost == 4 and results[0].ns == [10.0, 10.0, 10.0]
    assert "LOST 4" in bench.render_table(results, ["plain"])


def test_bench_marks_a_hung_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired(args[0], 5)  # type: ignore[arg-type]

    monkeypatch.setattr(bench.subprocess, "run", hang)
    results = bench.measure([(sys.executable, "loguru", "plain")], 10, 3, 5)
    assert results[0].failure == "hung (killed after 5s)"
    assert "hung" in bench.render_table(results, ["plain"])

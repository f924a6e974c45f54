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
    saved = json.loads(out.read_text())
    assert saved["heading"].startswith("kakashi benchmark: ")
    results = saved["results"]
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


def test_chart_from_saved_results_marks_lost_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    saved = {
        "heading": "kakashi benchmark: a test",
        "results": [
            {"lib": "stdlib", "case": "plain", "ns": [900.0], "lost": 0, "failure": "", "extra": {}},
            {"lib": "kakashi", "case": "plain", "ns": [90.0], "lost": 0, "failure": "", "extra": {}},
            {"lib": "loguru", "case": "plain", "ns": [], "lost": 0, "failure": "hung (killed after 5s)", "extra": {}},
            {"lib": "kakashi-0.2.2", "case": "async", "ns": [50.0], "lost": 7, "failure": "", "extra": {}},
        ],
    }
    source, chart = tmp_path / "saved.json", tmp_path / "chart.png"
    source.write_text(json.dumps(saved))
    proc = subprocess.run(
        [sys.executable, "-m", "kakashi.bench", "--from-json", str(source), "--chart", str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOST 7" in proc.stdout and "hung (killed after 5s)" in proc.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from kakashi.bench import _chart

    texts: list[str] = []
    import matplotlib.axes

    real_text = matplotlib.axes.Axes.text

    def record(self: object, x: float, y: float, s: str, *args: object, **kwargs: object) -> object:
        texts.append(s)
        return real_text(self, x, y, s, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.axes.Axes, "text", record)
    results = [bench.Result(**r) for r in saved["results"]]
    _chart.write_chart(results, ["plain", "async"], bench.CASES, str(tmp_path / "again.png"), "t")
    assert "50  LOST 7 lines" in texts and "hung (killed after 5s)" in texts and "90" in texts


@pytest.mark.timeout(180)
def test_remote_sinks_case_counts_delivery_at_the_receiver(tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    proc = subprocess.run(
        [sys.executable, "-m", "kakashi.bench", "--cases", "remote", "-n", "500", "--repeats", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr
    results = {r["lib"]: r for r in json.loads(out.read_text())["results"]}
    assert {"file", "syslog-udp", "syslog-tcp"} <= results.keys()
    # TCP and the file lose nothing; the receiver's own count says so (UDP may lose, and says).
    assert all(results[lib]["lost"] == 0 and not results[lib]["failure"] for lib in ("file", "syslog-tcp"))
    assert "x of the file sink" in proc.stdout


def test_a_peer_whose_parent_package_is_missing_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # find_spec("a.b") raises when "a" is not installed: the runner must skip, not crash.
    monkeypatch.setitem(bench.MODULE_OF, "otlp", "no_such_package_kakashi.exporter")
    assert bench.available("otlp") is False
    assert all(lib != "otlp" for _, lib, _ in bench.plan([], ["remote"], None))

"""The side-by-side benchmark: ``python -m kakashi.bench`` (or ``kakashi bench``).

Each (library, case) pair runs in fresh subprocesses, several times; the table shows the
median nanoseconds per call, calls per second, the ratio to stdlib ``logging`` measured in
the same run, and the lines each run lost (expected minus counted in its output file). A
run that hangs is killed and marked.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CASES_SCRIPT = Path(__file__).with_name("_cases.py")
LIBRARIES = ("stdlib", "picologging", "structlog", "loguru", "kakashi")
CASES = {
    "plain": "INFO to a file",
    "fields": "INFO + 3 fields",
    "filtered": "filtered DEBUG",
    "threads4": "4 threads, INFO",
    "async": "async / queue handler",
    "memory": "tracemalloc, INFO",
    "middleware": "per request, Starlette",
    "flask": "per request, Flask",
    "django": "per request, Django",
    "remote": "async, remote sinks",
}
MIDDLEWARE_LIBS = ("bare", "kakashi", "correlation-id+stdlib")
FLASK_LIBS = ("flask", "flask+kakashi", "flask+log-request-id+stdlib")
DJANGO_LIBS = ("django", "django+kakashi", "django+structlog")
REMOTE_LIBS = ("file", "syslog-udp", "syslog-tcp", "otlp")  # kakashi's sinks, async mode
DEFAULT_CASES = (
    "plain",
    "fields",
    "filtered",
    "threads4",
    "async",
    "memory",
    "middleware",
    "flask",
    "django",
    "remote",
)
# Which libraries take part in which case (the async case compares queue-based loggers).
ASYNC_LIBS = ("stdlib", "loguru", "kakashi-0.2.2")
MODULE_OF = {
    "picologging": "picologging",
    "structlog": "structlog",
    "loguru": "loguru",
    "bare": "starlette",
    "correlation-id+stdlib": "asgi_correlation_id",
    "flask": "flask",
    "flask+kakashi": "flask",
    "flask+log-request-id+stdlib": "flask_log_request_id",
    "django": "django",
    "django+kakashi": "django",
    "django+structlog": "django_structlog",
    "otlp": "opentelemetry.exporter.otlp.proto.http",
}


@dataclass
class Result:
    lib: str
    case: str
    ns: list[float] = field(default_factory=list)
    lost: int = 0
    failure: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.ns) if self.ns else float("nan")


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def run_once(python: str, lib: str, case: str, n: int, timeout: float) -> tuple[float, int, str, dict[str, float]]:
    """One subprocess. Returns (ns per call, lines lost, failure text, extra figures)."""
    with tempfile.TemporaryDirectory(prefix="kakashi-bench-") as tmp:
        out = os.path.join(tmp, "out.log")
        try:
            proc = subprocess.run(
                [python, str(CASES_SCRIPT), lib, case, str(n), out],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return float("nan"), 0, f"hung (killed after {timeout:.0f}s)", {}
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return float("nan"), 0, f"exit {proc.returncode}: {tail[:80]}", {}
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        written = count_lines(out) if os.path.exists(out) else 0
        extra = {k: v for k, v in data.items() if k not in ("ns_per_call", "expected")}
        return data["ns_per_call"], data["expected"] - written, "", extra


def available(lib: str) -> bool:
    module = MODULE_OF.get(lib)
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def plan(libs: list[str], cases: list[str], old_python: str | None) -> list[tuple[str, str, str]]:
    """(python, lib, case) for every pair that takes part."""
    runs = []
    for case in cases:
        if case == "middleware":
            runs += [(sys.executable, lib, case) for lib in MIDDLEWARE_LIBS if available(lib) and available("bare")]
            continue
        if case == "flask":
            runs += [(sys.executable, lib, case) for lib in FLASK_LIBS if available(lib) and available("flask")]
            continue
        if case == "django":
            runs += [(sys.executable, lib, case) for lib in DJANGO_LIBS if available(lib) and available("django")]
            continue
        if case == "remote":
            runs += [(sys.executable, lib, case) for lib in REMOTE_LIBS if available(lib)]
            continue
        names = list(libs) + (["kakashi-0.2.2"] if old_python else [])
        for lib in names:
            if case == "async" and lib not in ASYNC_LIBS and lib != "kakashi":
                continue
            if case == "memory" and lib != "kakashi":
                continue
            python = old_python if lib == "kakashi-0.2.2" else sys.executable
            if python and (lib == "kakashi-0.2.2" or available(lib)):
                runs.append((python, lib, case))
    return runs


def measure(runs: list[tuple[str, str, str]], n: int, repeats: int, timeout: float) -> list[Result]:
    results = {(lib, case): Result(lib, case) for _, lib, case in runs}
    # Interleave repeats (all pairs once, then again) so a noisy minute hits everyone alike.
    for _ in range(repeats):
        for python, lib, case in runs:
            res = results[(lib, case)]
            if res.failure:
                continue
            calls = n * 10 if case == "filtered" else n
            ns, lost, failure, extra = run_once(python, lib, case, calls, timeout)
            if failure:
                res.failure = failure
                continue
            res.ns.append(ns)
            res.lost = max(res.lost, lost)
            for key, value in extra.items():
                res.extra[key] = max(res.extra.get(key, value), value)
    return list(results.values())


def render_table(results: list[Result], cases: list[str]) -> str:
    base = {r.case: r.median for r in results if r.lib == "stdlib" and r.ns}
    # Middleware: the ratio column compares the overhead over the bare app with the
    # overhead of asgi-correlation-id + a stdlib access log.
    mw = {r.lib: r.median for r in results if r.case == "middleware" and r.ns}
    fl = {r.lib: r.median for r in results if r.case == "flask" and r.ns}
    dj = {r.lib: r.median for r in results if r.case == "django" and r.ns}
    remote = {r.lib: r.median for r in results if r.case == "remote" and r.ns}
    rows = [("case", "library", "ns/call", "calls/s", "vs stdlib", "lines lost")]
    for case in cases:
        for r in (r for r in results if r.case == case):
            if r.failure:
                rows.append((CASES[case], r.lib, "-", "-", "-", r.failure))
                continue
            med = r.median
            ratio = f"{med / base[case]:.3f}x" if case in base else "-"
            if case == "middleware" and {"bare", "correlation-id+stdlib"} <= mw.keys() and r.lib != "bare":
                other = mw["correlation-id+stdlib"] - mw["bare"]
                ratio = f"+{med - mw['bare']:,.0f} ns = {(med - mw['bare']) / other:.2f}x of theirs"
            if case == "flask" and {"flask", "flask+log-request-id+stdlib"} <= fl.keys() and r.lib != "flask":
                other = fl["flask+log-request-id+stdlib"] - fl["flask"]
                ratio = f"+{med - fl['flask']:,.0f} ns = {(med - fl['flask']) / other:.2f}x of theirs"
            if case == "remote" and "file" in remote:
                ratio = f"{med / remote['file']:.2f}x of the file sink"
            if case == "django" and {"django", "django+structlog"} <= dj.keys() and r.lib != "django":
                other = dj["django+structlog"] - dj["django"]
                ratio = f"+{med - dj['django']:,.0f} ns = {(med - dj['django']) / other:.2f}x of theirs"
            lost = "0" if r.lost == 0 else f"LOST {r.lost:,}"
            rows.append((CASES[case], r.lib, f"{med:,.0f}", f"{1e9 / med:,.0f}", ratio, lost))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kakashi.bench", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="calls per run (filtered: 10x this)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pair; the median is shown (>= 3)")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--libs", default=",".join(LIBRARIES), help="comma-separated libraries to compare")
    parser.add_argument(
        "--compare-0.2.2",
        dest="old_python",
        metavar="PYTHON",
        help="an interpreter with kakashi 0.2.2 installed, to add it to the table",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is killed")
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    parser.add_argument(
        "--chart", metavar="PNG", help="also draw the results, one panel per case (needs kakashi[chart])"
    )
    parser.add_argument(
        "--from-json", metavar="FILE", help="show (and --chart) the results saved by --json instead of running"
    )
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.repeats < 1 or args.n < 1:
        parser.error("-n and --repeats must be positive")
    libs = [lib for lib in args.libs.split(",") if lib]
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        heading = saved["heading"]
        results = [Result(**r) for r in saved["results"]]
        cases = [c for c in cases if any(r.case == c for r in results)]
        print(heading)
    else:
        runs = plan(libs, cases, args.old_python)
        missing = [lib for lib in libs if not available(lib)]
        heading = (
            f"kakashi benchmark: {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}, n={args.n:,}, median of {args.repeats}"
        )
        print(heading, flush=True)
        if missing:
            print(f"not installed, skipped: {', '.join(missing)} (pip install 'kakashi[bench]')", flush=True)
        results = measure(runs, args.n, args.repeats, args.timeout)
    print(render_table(results, cases))
    for r in results:
        for key, value in r.extra.items():
            print(f"{r.lib} {r.case}: {key} = {value:.4f}")
    if args.json:
        saved = {"heading": heading, "results": [r.__dict__ for r in results]}
        Path(args.json).write_text(json.dumps(saved, indent=1))
    if args.chart:
        from ._chart import write_chart

        write_chart(results, cases, CASES, args.chart, heading)
        print(f"chart written to {args.chart}")
    lost_any = any(r.lost or r.failure for r in results if r.lib == "kakashi")
    return 1 if lost_any else 0

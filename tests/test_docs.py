"""Code in README.md runs and prints what its comments say."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import read_lines, run_python

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    (tour,) = python_blocks(ROOT / "README.md")
    proc = run_python(tour, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    promised = re.search(r"print\(kakashi\.stats\(\)\)\s+# (\{.*?), \.\.\.\}", tour)
    assert promised is not None
    stats = ast.literal_eval(proc.stdout.strip())
    assert {k: stats[k] for k in ast.literal_eval(promised.group(1) + "}")} == ast.literal_eval(promised.group(1) + "}")
    assert len(read_lines(tmp_path / "app.log")) == 5


def test_readme_has_exactly_two_quick_start_commands() -> None:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", quick, re.S)
    assert len(commands) == 2 and all(c.count("\n") == 1 for c in commands)
    assert "kakashi.bench" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_basic_example_app_writes_every_line(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    log = tmp_path / "basic.log"
    proc = subprocess.run([sys.executable, str(ROOT / "example_apps" / "basic.py"), str(log)], timeout=60)
    assert proc.returncode == 0
    records = [json.loads(line) for line in read_lines(log)]
    assert len(records) == 1 + 400 + 1 + 1
    assert records[-2]["exception"]["type"] == "KeyError" and records[-1]["message"] == "done"


DOC_PRELUDE = "import kakashi\nlog = kakashi.get_logger('docs')\n"


def doc_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for index, block in enumerate(python_blocks(page)):
            found.append((page.name, index, block))
    return found


@pytest.mark.parametrize(("page", "index", "code"), doc_blocks(), ids=lambda v: str(v)[:20])
def test_every_python_example_in_the_docs_runs(tmp_path: Path, page: str, index: int, code: str) -> None:
    proc = run_python(DOC_PRELUDE + code, cwd=tmp_path)
    assert proc.returncode == 0, f"{page} block {index} failed:\n{proc.stderr}"


def test_every_public_name_is_documented() -> None:
    import kakashi

    text = "".join(page.read_text() for page in (ROOT / "docs").glob("*.md"))
    missing = [name for name in kakashi.__all__ if not name.startswith("__") and name not in text]
    assert missing == []
    undocumented = [
        name for name in kakashi.__all__ if callable(getattr(kakashi, name)) and not getattr(kakashi, name).__doc__
    ]
    assert undocumented == []


@pytest.mark.timeout(300)
def test_the_manual_builds_with_strict_checks(tmp_path: Path) -> None:
    # --strict (also set in mkdocs.yml) fails on a broken link or anchor, a page missing
    # from the nav, and an API reference entry that names nothing.
    pytest.importorskip("mkdocs")
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "get_logger" in reference and "KakashiMiddleware" in reference and "RotatingFileSink" in reference

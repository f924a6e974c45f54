"""The layering rules: kakashi/ is stdlib-only, integrations/ use the public API, the wheel
holds both; the sources and docs name each guarantee in words."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"orjson", "opentelemetry"}  # imported lazily, only when installed
BENCH_ONLY = {"_cases.py": "the libraries it compares", "_chart.py": "matplotlib, for --chart"}

# Guarantees and the cases that test them are named in words, as docs/guarantees.md names
# them, never by a short code: a capital P or R and one or two digits, or such a code inside
# a test's name. Those codes are an internal numbering that readers of this repository do not
# have. Matching whole words only leaves identifiers, hex and hashes that merely contain such
# a pair alone.
NUMBERED = re.compile(r"\b[PR][0-9]{1,2}\b")
NUMBERED_TEST = re.compile(r"\btest_(?:\w*_)?r[0-9]{1,2}_")
CHECKED = ("kakashi", "integrations", "tests", "docs", "example_apps", "README.md")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Top-level module names imported by ``path`` (absolute imports only) and the level."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_core_imports_only_the_standard_library() -> None:
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in sorted((ROOT / "kakashi").rglob("*.py")):
        if path.parent.name == "bench" and path.name in BENCH_ONLY:
            continue  # imported only by the benchmark runner, for BENCH_ONLY[path.name]
        for module, level in imports_of(path):
            top = module.split(".")[0]
            if level == 0 and top not in stdlib and top != "kakashi" and top not in OPTIONAL:
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_integrations_use_only_the_public_api() -> None:
    offenders = []
    for path in sorted((ROOT / "integrations").rglob("*.py")):
        for module, level in imports_of(path):
            private = any(part.startswith("_") for part in module.split(".")[1:])
            if (module.startswith("kakashi.") and private and not module.startswith("kakashi.integrations")) or (
                level > 1
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_package_ships_py_typed() -> None:
    assert (ROOT / "kakashi" / "py.typed").exists()


@pytest.mark.timeout(300)
def test_wheel_contains_core_and_integrations(tmp_path: Path) -> None:
    pytest.importorskip("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("kakashi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kakashi/__init__.py" in names and "kakashi/py.typed" in names
    assert "kakashi/integrations/__init__.py" in names
    assert "kakashi/bench/_cases.py" in names
    assert not any(name.startswith(("tests/", "integrations/")) for name in names)


def tracked_text_files() -> list[Path]:
    """The text files git tracks under CHECKED (images under docs/img/ and binary files left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *CHECKED], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = []
    for name in listed.stdout.split("\0"):
        path = ROOT / name
        if not name or name.startswith("docs/img/") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def test_guarantees_and_cases_are_named_in_words() -> None:
    files = tracked_text_files()
    assert any(path.name == "guarantees.md" for path in files)
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {match.group()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for pattern in (NUMBERED, NUMBERED_TEST)
        for match in pattern.finditer(line)
    ]
    assert offenders == []

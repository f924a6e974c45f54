"""The layering rules: kakashi/ is stdlib-only, integrations/ use the public API, the wheel
holds both."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"orjson", "opentelemetry"}  # imported lazily, only when installed
BENCH_ONLY = {"_cases.py": "the libraries it compares", "_chart.py": "matplotlib, for --chart"}


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

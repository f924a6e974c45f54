"""User code type-checks against kakashi: tests/typing/ passes ``mypy --strict``, and each
mistake marked there (``# type: ignore[<code>]``, with warn_unused_ignores) is still caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPING = ROOT / "tests" / "typing"


def installed_layout(target: Path) -> Path:
    """A copy of the package as a wheel installs it (``integrations/`` as
    ``kakashi/integrations/``): mypy does not follow the editable install's mapping."""
    package = target / "kakashi"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "kakashi", package, ignore=ignore)
    shutil.copytree(ROOT / "integrations", package / "integrations", ignore=ignore)
    return target


@pytest.mark.timeout(300)
def test_user_code_passes_mypy_strict_and_its_mistakes_are_caught(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    for framework in ("fastapi", "flask", "django"):
        pytest.importorskip(framework)
    site = installed_layout(tmp_path / "site")
    command = [sys.executable, "-m", "mypy", "--config-file", str(TYPING / "mypy.ini")]
    command += ["--cache-dir", str(tmp_path / "cache"), "--strict", str(TYPING)]
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues found in 4 source files" in proc.stdout

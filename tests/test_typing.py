"""User code type-checks against strategystore as installed, editable install included.

A fresh virtual environment gets the package the way the README installs it
(``pip install -e``); mypy, in strict mode and with no configuration of this
repository, then checks ``typing_user_code.py`` against it. A package mypy
cannot find, a missing ``py.typed`` or a type that changed fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_CODE = Path(__file__).with_name("typing_user_code.py")

pytest.importorskip("mypy", reason="mypy comes with the dev extra")


def _python(environment: Path) -> Path:
    return environment / "bin" / "python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with strategystore installed editable, as the README does."""
    environment = tmp_path_factory.mktemp("user") / "venv"
    venv.create(environment, with_pip=True)
    done = subprocess.run(
        [str(_python(environment)), "-m", "pip", "install", "--quiet", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return environment


def mypy_strict(installed: Path, where: Path) -> subprocess.CompletedProcess[str]:
    """mypy in strict mode, as a user runs it, on ``where/app.py`` against ``installed``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            str(_python(installed)),
            "app.py",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_mypy_strict_on_user_code_finds_the_package_and_its_types(
    installed: Path, tmp_path: Path
) -> None:
    shutil.copy(USER_CODE, tmp_path / "app.py")
    done = mypy_strict(installed, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 1 source file" in done.stdout


def test_a_wrong_type_in_user_code_is_reported(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from strategystore import MemoryStore\n"
        "version: str = MemoryStore().create_next('acme').version\n"
    )
    done = mypy_strict(installed, tmp_path)
    assert done.returncode == 1
    assert 'Incompatible types in assignment (expression has type "int"' in done.stdout

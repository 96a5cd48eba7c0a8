"""The built wheel and sdist hold the package, ``py.typed`` and their metadata, nothing else."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "strategystore"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
NAME_VERSION = f"{PROJECT['name']}-{PROJECT['version']}"


def package_files() -> set[str]:
    """Every module of the package in the source tree, its ``py.typed`` and the page's files."""
    modules = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    web = PACKAGE / "web"
    page = {
        p.relative_to(ROOT).as_posix()
        for p in (*web.glob("templates/*.html"), *web.glob("static/*.css"))
    }
    return {*modules, *page, "strategystore/py.typed"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel ``python -m build`` makes of this checkout, the wheel from the sdist."""
    if importlib.util.find_spec("build") is None:
        message = "the build package is missing: pip install -e '.[dev]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--outdir", str(out)]
    # With hatchling at hand no build environment (and no network) is needed.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")
    built = subprocess.run(
        [*command, str(ROOT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def the_one(dist: Path, pattern: str) -> Path:
    [found] = dist.glob(pattern)
    return found


def test_the_wheel_holds_the_package_and_its_metadata_only(dist: Path) -> None:
    with zipfile.ZipFile(the_one(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
    info = f"{NAME_VERSION}.dist-info"
    metadata = {f"{info}/{n}" for n in ("METADATA", "WHEEL", "RECORD", "entry_points.txt")}
    assert names == package_files() | metadata | {f"{info}/licenses/LICENSE"}
    assert "strategystore/bench/_report.py" in names
    assert "strategystore/web/templates/version.html" in names
    assert "strategystore/web/static/style.css" in names


def test_the_sdist_holds_the_package_readme_license_and_pyproject_only(dist: Path) -> None:
    with tarfile.open(the_one(dist, "*.tar.gz")) as sdist:
        names = {m.name for m in sdist.getmembers() if not m.isdir()}
    top = {"README.md", "LICENSE", "pyproject.toml", "PKG-INFO"}
    assert names == {f"{NAME_VERSION}/{name}" for name in package_files() | top}


def wheel_metadata(dist: Path) -> Message:
    with zipfile.ZipFile(the_one(dist, "*.whl")) as wheel:
        text = wheel.read(f"{NAME_VERSION}.dist-info/METADATA").decode("utf-8")
    return Parser().parsestr(text)


def test_the_wheel_metadata_names_license_author_and_typing(dist: Path) -> None:
    metadata = wheel_metadata(dist)
    assert "MIT" in (metadata["License-Expression"] or metadata["License"] or "")
    assert metadata["Author"] or metadata["Author-email"]
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert metadata["Requires-Python"] == PROJECT["requires-python"]
    extras = set(metadata.get_all("Provides-Extra", []))
    assert {"test", "dev", "postgres", "bench", "web"} <= extras

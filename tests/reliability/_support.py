"""What the reliability tests and their worker processes share.

The worker processes import this module too, so it imports nothing from
pytest: figures, the stress factor, documents, the write scenarios every
crash and fault test walks through, and snapshots of a data directory.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from strategystore import Status, StrategyDocument
from strategystore.store import BaseStore
from tests import conftest

T0 = conftest.T0

#: A moment after every document the scenarios create, for status changes.
T1 = T0 + timedelta(hours=1)


def stress_factor() -> int:
    """How many times the default rounds and examples a run makes.

    ``STRATEGYSTORE_STRESS=1`` multiplies them by 10;
    ``STRATEGYSTORE_STRESS_FACTOR=N`` by ``N``.
    """
    factor = os.environ.get("STRATEGYSTORE_STRESS_FACTOR", "").strip()
    if factor:
        return max(1, int(factor))
    return 10 if os.environ.get("STRATEGYSTORE_STRESS", "").strip() not in ("", "0") else 1


def scaled(rounds: int) -> int:
    """``rounds`` times the stress factor."""
    return rounds * stress_factor()


#: Figures of this run, printed by the reliability conftest at the end.
FIGURES: Counter[str] = Counter()


def count(figure: str, amount: int = 1) -> None:
    """Add ``amount`` to one of the run's figures."""
    FIGURES[figure] += amount


def lock_files_open(locks: str) -> int:
    """How many of this process's descriptors are open on a file in the directory ``locks``."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        found += target.startswith(locks + "/")
    return found


def make_doc(brief_id: str = "acme", version: int = 1, **fields: object) -> StrategyDocument:
    """The suite's usual document (``tests.conftest.make_doc``), for brief ``acme``."""
    return conftest.make_doc(brief_id, version, **fields)


def changed(doc: StrategyDocument, tag: str = "changed") -> StrategyDocument:
    """``doc`` with different metadata, so its bytes differ."""
    return doc.model_copy(update={"metadata": {**doc.metadata, "tag": tag}})


# -- the write scenarios ------------------------------------------------------


def seed_base(store: BaseStore) -> None:
    """The state every scenario starts from.

    ``acme`` has a draft 1, an approved 2 and a draft 3; ``solo`` has only a
    draft 1, so deleting it removes the brief.
    """
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2, status=Status.APPROVED))
    store.save(make_doc("acme", 3))
    store.save(make_doc("solo", 1))


@dataclass(frozen=True)
class Scenario:
    """One write, from the state ``seed_base`` leaves."""

    name: str
    run: Callable[[BaseStore], object]
    #: Whether the write touches several documents (each must be old or new on its own).
    several: bool = False


def _import(store: BaseStore) -> object:
    docs = [make_doc("acme", 4), changed(make_doc("acme", 1)), make_doc("fresh", 1)]
    return store.import_documents(docs, upsert=True)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("save-new-version", lambda s: s.save(make_doc("acme", 4))),
        Scenario("save-over-a-draft", lambda s: s.save(changed(make_doc("acme", 1)))),
        Scenario("save-new-brief", lambda s: s.save(make_doc("fresh", 1))),
        Scenario("create", lambda s: s.create(make_doc("acme", 4))),
        Scenario("create-new-brief", lambda s: s.create(make_doc("fresh", 1))),
        Scenario("create_next", lambda s: s.create_next("acme", now=T1)),
        Scenario("create_next-new-brief", lambda s: s.create_next("fresh", now=T1)),
        Scenario(
            "update",
            lambda s: s.update(changed(make_doc("acme", 1)), expected=make_doc("acme", 1)),
        ),
        Scenario("approve", lambda s: s.approve("acme", 1, now=T1)),
        Scenario("reject", lambda s: s.reject("acme", 3, reason="off brief", now=T1)),
        Scenario("withdraw", lambda s: s.withdraw("acme", 2, reason="recalled", now=T1)),
        Scenario("delete", lambda s: s.delete("acme", 3)),
        Scenario("delete-last-version", lambda s: s.delete("solo", 1)),
        Scenario("import", _import, several=True),
    ]
}

#: The write methods of the contract, each through at least one scenario.
WRITE_SCENARIOS = [name for name, s in SCENARIOS.items() if not s.several]


# -- looking at a data directory ------------------------------------------------


def is_temporary(name: str) -> bool:
    """The store's temporary-file names: a leading ``.`` and a ``.tmp`` suffix."""
    return name.startswith(".") and name.endswith(".tmp")


def disk_state(data_dir: Path) -> dict[str, bytes]:
    """Every regular file under ``data_dir`` but lock files and temporary files.

    Keys are paths relative to ``data_dir`` with ``/``; empty directories do
    not show, as they do not in git.
    """
    state: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(data_dir):
        rel = Path(dirpath).relative_to(data_dir)
        if rel.parts[:1] == (".locks",):
            continue
        dirnames.sort()
        for name in filenames:
            if is_temporary(name):
                continue
            state[(rel / name).as_posix()] = (Path(dirpath) / name).read_bytes()
    return state


def temporary_files(data_dir: Path) -> list[str]:
    """The temporary files left anywhere under ``data_dir``."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(data_dir):
        rel = Path(dirpath).relative_to(data_dir)
        found += [(rel / n).as_posix() for n in filenames if is_temporary(n)]
    return sorted(found)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root`` (itself excluded) with its kind and content digest.

    Symbolic links are recorded, never followed, so the snapshot shows a
    link's target rather than what it points to.
    """
    found: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(mode):
                found[rel] = ("dir", "")
            elif stat.S_ISREG(mode):
                found[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                found[rel] = ("other", stat.filemode(mode))
    return found


def digest(data: bytes) -> str:
    """A short content digest, for messages and figures."""
    return hashlib.sha256(data).hexdigest()[:16]

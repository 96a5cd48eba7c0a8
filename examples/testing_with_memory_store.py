"""Test application code against ``MemoryStore``; run it for real against ``FileStore``.

The application function takes any ``Store``. Its tests use
``open_store("memory")``: no disk, no clean-up, and the same behaviour and
errors as the file store. An application would open its real store with
``open_store()``, the file store in ``./strategy-data`` unless
``$STRATEGYSTORE_MODE`` or ``$STRATEGYSTORE_DIR`` say otherwise; the real run
here uses a file store in a temporary directory instead, removed at the end,
so running the example leaves no data behind.

Run it directly (``python examples/testing_with_memory_store.py``) to run the
tests and then the real thing, or point pytest at it to run only the tests.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from strategystore import Section, Status, Store, StrategyDocument, open_store

REQUIRED_SECTIONS = frozenset({"audience", "message"})


def publish_strategy(store: Store, brief_id: str, sections: Iterable[Section]) -> StrategyDocument:
    """Application code: store a generated strategy and review it at once.

    A strategy with every required section is approved; one without is
    rejected with the reason. Returns the stored version.
    """
    draft = store.create_next(brief_id, sections, {"source": "generator"})
    missing = REQUIRED_SECTIONS - {s.key for s in draft.sections}
    if missing:
        reason = f"missing sections: {', '.join(sorted(missing))}"
        return store.reject(brief_id, draft.version, reason=reason)
    return store.approve(brief_id, draft.version)


AUDIENCE = Section(key="audience", title="Audience", body="Small bakeries.")
MESSAGE = Section(key="message", title="Key message", body="Bread sells itself. We help.")


def test_a_complete_strategy_is_approved() -> None:
    store = open_store("memory")
    doc = publish_strategy(store, "bakery-launch", [AUDIENCE, MESSAGE])
    assert doc.status is Status.APPROVED
    assert store.get_latest("bakery-launch", status=Status.APPROVED) == doc


def test_an_incomplete_strategy_is_rejected_with_the_reason() -> None:
    store = open_store("memory")
    doc = publish_strategy(store, "bakery-launch", [AUDIENCE])
    assert doc.status is Status.REJECTED
    assert doc.status_reason == "missing sections: message"


def test_a_rejection_keeps_the_earlier_approval_as_the_latest_approved() -> None:
    store = open_store("memory")
    approved = publish_strategy(store, "bakery-launch", [AUDIENCE, MESSAGE])
    publish_strategy(store, "bakery-launch", [MESSAGE])
    assert store.list_version_numbers("bakery-launch") == [2, 1]
    assert store.get_latest("bakery-launch", status=Status.APPROVED) == approved


def main() -> None:
    tests = [
        test_a_complete_strategy_is_approved,
        test_an_incomplete_strategy_is_rejected_with_the_reason,
        test_a_rejection_keeps_the_earlier_approval_as_the_latest_approved,
    ]
    for test in tests:
        test()
        print(f"passed (MemoryStore): {test.__name__}")

    with (
        tempfile.TemporaryDirectory() as tmp,
        open_store("file", Path(tmp) / "strategy-data") as store,
    ):
        doc = publish_strategy(store, "bakery-launch", [AUDIENCE, MESSAGE])
        print(f"\nfor real ({store!r}):")
        print(f"  stored version {doc.version} of {doc.brief_id}: {doc.status.value}")
        print(f"  on disk: {sorted(p.name for p in (Path(tmp) / 'strategy-data').iterdir())}")
    print("  (the temporary data directory is removed again)")


if __name__ == "__main__":
    main()

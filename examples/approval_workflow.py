"""Approval workflow: drafts, review, approval, withdrawal, and the latest approved version.

Run it from any directory; the data goes to ``./strategy-data`` (or
``$STRATEGYSTORE_DIR``). Running it again adds new versions beside the old.
"""

from __future__ import annotations

from strategystore import ImmutableVersionError, Section, Status, StrategyDocument, open_store

BRIEF = "globex-spring-campaign"


def main() -> None:
    store = open_store("file")

    # A first draft goes to review and is sent back.
    first = store.create_next(
        BRIEF,
        [
            Section(key="audience", title="Audience", body="Everyone who likes spring."),
            Section(key="message", title="Key message", body="Spring is here."),
        ],
        {"author": "generator", "model": "gpt-4o"},
    )
    print(f"draft    v{first.version}: {len(first.sections)} sections")
    rejected = store.reject(BRIEF, first.version, reason="Audience is too broad")
    print(f"rejected v{rejected.version}: {rejected.status_reason}")

    # The second draft is edited in place before review. update() is a
    # compare-and-swap: it fails if someone else changed the draft meanwhile.
    second = store.create_next(
        BRIEF,
        [
            Section(key="audience", title="Audience", body="Gardeners aged 30-55 in cities."),
            Section(key="message", title="Key message", body="Your balcony, in bloom."),
        ],
        {"author": "generator", "model": "gpt-4o", "revision_of": first.version},
    )
    edited = StrategyDocument.model_validate(
        {
            **second.model_dump(),
            "sections": [
                *second.model_dump()["sections"],
                {"key": "channels", "title": "Channels", "body": "- Garden centres\n- Pinterest"},
            ],
        }
    )
    store.update(edited, expected=second)
    print(f"draft    v{second.version}: edited in place, now {len(edited.sections)} sections")

    approved = store.approve(BRIEF, second.version)
    print(f"approved v{approved.version} at {approved.updated_at:%Y-%m-%d %H:%M:%S} UTC")

    # Approved versions are immutable: a change needs a new version.
    try:
        store.save(approved.model_copy(update={"metadata": {"late": True}}))
    except ImmutableVersionError as exc:
        print(f"refused: {exc}")

    third = store.create_next(BRIEF, edited.sections, {"author": "editor", "revision_of": 2})
    store.approve(BRIEF, third.version)
    latest = store.get_latest(BRIEF, status=Status.APPROVED)
    assert latest is not None
    print(f"latest approved: v{latest.version}")

    # Withdrawing is the soft delete: the file stays, its status says why.
    store.withdraw(BRIEF, third.version, reason="Legal asked to pause the channels section")
    latest = store.get_latest(BRIEF, status=Status.APPROVED)
    assert latest is not None
    print(f"withdrew v{third.version}; latest approved is now v{latest.version}")

    print(f"\nversions of {BRIEF}:")
    for doc in store.list_versions_by_brief(BRIEF):
        reason = f"  ({doc.status_reason})" if doc.status_reason else ""
        print(f"  v{doc.version:<3} {doc.status.value:<9}{reason}".rstrip())
    print(f"\nsee them with: strategystore versions {BRIEF}")


if __name__ == "__main__":
    main()

"""Quickstart: version a strategy for a brief, approve one, and see the files.

Run it from any directory; the data goes to ``./strategy-data`` (or
``$STRATEGYSTORE_DIR``). Running it again adds new versions beside the old.
"""

from __future__ import annotations

from strategystore import Section, Status, open_store

BRIEF = "acme-q3-launch"


def main() -> None:
    store = open_store("file")

    first = store.create_next(
        BRIEF,
        [
            Section(key="audience", title="Audience", body="Urban cyclists, 25-40."),
            Section(key="message", title="Key message", body="Commute faster, arrive fresh."),
        ],
        {"generator": "quickstart", "tone": "friendly"},
    )
    print(f"created version {first.version} of {BRIEF} ({first.status})")

    revised = store.create_next(
        BRIEF,
        [
            *first.sections,
            Section(key="channels", title="Channels", body="- Instagram reels\n- Bike shops"),
        ],
        {**first.metadata, "revision_of": first.version},
    )
    print(f"created version {revised.version} with a channels section")

    approved = store.approve(BRIEF, revised.version)
    print(f"approved version {approved.version} at {approved.updated_at:%Y-%m-%d %H:%M:%S} UTC")

    latest = store.get_latest(BRIEF, status=Status.APPROVED)
    assert latest is not None
    print(f"latest approved: version {latest.version}, sections:")
    for section in latest.sections:
        print(f"  - {section.title}")

    print(f"\nversions of {BRIEF}, newest first: {store.list_version_numbers(BRIEF)}")
    print(f"data directory: {store.data_dir}")
    print(f"open this file in an editor: {store.document_path(BRIEF, latest.version)}")
    print("or list everything with: strategystore briefs")


if __name__ == "__main__":
    main()

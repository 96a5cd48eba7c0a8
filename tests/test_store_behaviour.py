"""The contract of DESIGN.md section 3, run against both stores through the ``store`` fixture."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from pydantic import JsonValue, ValidationError

from strategystore import (
    ConcurrentUpdateError,
    DuplicateVersionError,
    ImmutableVersionError,
    InvalidBriefIdError,
    MemoryStore,
    Section,
    Status,
    StatusChangeError,
    Store,
    StoreUnavailableError,
    StrategyDocument,
    VersionNotFoundError,
)
from strategystore._primitives import IMPORT_BATCH
from strategystore.store import BaseStore
from tests.conftest import T0, make_doc

LATER = T0 + timedelta(hours=1)


def test_both_stores_satisfy_the_store_protocol(store: BaseStore) -> None:
    assert isinstance(store, Store)


def test_repr_is_the_constructor_call(store: BaseStore) -> None:
    assert repr(store).startswith(f"{type(store).__name__}(")
    # Not the default "<… object at 0x…>" (a socket directory's random name may hold "0x").
    assert " at 0x" not in repr(store)


# -- the original repository port: save, get_strategy, list_versions_by_brief


def test_save_then_get_round_trips_the_document(store: BaseStore) -> None:
    doc = make_doc(metadata={"nested": {"b": [1, 2.5, None, True], "a": "é"}})
    store.save(doc)
    got = store.get_strategy("acme-q3", 1)
    assert got == doc
    assert got is not doc
    assert got is not None and got.to_json_bytes() == doc.to_json_bytes()


def test_save_overwrites_the_same_version_and_the_latest_content_wins(store: BaseStore) -> None:
    store.save(make_doc(metadata={"round": 1}))
    store.save(make_doc(metadata={"round": 2}))
    got = store.get_strategy("acme-q3", 1)
    assert got is not None and got.metadata == {"round": 2}
    assert store.list_version_numbers("acme-q3") == [1]


def test_list_versions_by_brief_is_newest_first(store: BaseStore) -> None:
    for version in (2, 10, 1):
        store.save(make_doc(version=version))
    assert [d.version for d in store.list_versions_by_brief("acme-q3")] == [10, 2, 1]


def test_missing_things_are_none_and_empty(store: BaseStore) -> None:
    assert store.get_strategy("nobody", 1) is None
    assert store.list_versions_by_brief("nobody") == []
    assert store.list_version_numbers("nobody") == []
    assert store.get_latest("nobody") is None
    assert store.list_briefs() == []


def test_saving_an_equal_document_is_a_no_op_even_when_approved(store: BaseStore) -> None:
    store.save(make_doc(status=Status.APPROVED))
    store.save(make_doc(status=Status.APPROVED))
    assert store.get_strategy("acme-q3", 1) == make_doc(status=Status.APPROVED)


@pytest.mark.parametrize("status", [Status.APPROVED, Status.REJECTED, Status.WITHDRAWN])
def test_save_refuses_to_change_a_version_that_is_not_a_draft(
    store: BaseStore, status: Status
) -> None:
    store.save(make_doc(status=status))
    with pytest.raises(ImmutableVersionError) as info:
        store.save(make_doc(status=status, metadata={"changed": True}))
    assert (info.value.brief_id, info.value.version, info.value.status) == ("acme-q3", 1, status)
    assert store.get_strategy("acme-q3", 1) == make_doc(status=status)


def test_save_refuses_what_is_not_a_document(store: BaseStore) -> None:
    with pytest.raises(TypeError, match="StrategyDocument"):
        store.save({"brief_id": "acme-q3", "version": 1})  # type: ignore[arg-type]


# -- equality by canonical bytes


def test_metadata_one_and_one_point_zero_and_true_are_different_documents(
    store: BaseStore,
) -> None:
    store.save(make_doc(metadata={"x": 1}))
    store.save(make_doc(metadata={"x": 1.0}))
    got = store.get_strategy("acme-q3", 1)
    assert got is not None and isinstance(got.metadata["x"], float)
    store.approve("acme-q3", 1, now=LATER)
    approved = store.get_strategy("acme-q3", 1)
    assert approved is not None
    with pytest.raises(ImmutableVersionError):
        store.save(approved.model_copy(update={"metadata": {"x": True}}))


def test_metadata_key_order_does_not_make_a_difference(store: BaseStore) -> None:
    store.save(make_doc(metadata={"a": 1, "b": {"y": 1, "x": 2}}, status=Status.APPROVED))
    # Approved: anything but an equal document would be refused.
    store.save(make_doc(metadata={"b": {"x": 2, "y": 1}, "a": 1}, status=Status.APPROVED))


# -- create and create_next


def test_create_inserts_a_new_version(store: BaseStore) -> None:
    store.create(make_doc())
    assert store.get_strategy("acme-q3", 1) == make_doc()


def test_create_refuses_an_existing_version_whatever_its_content(store: BaseStore) -> None:
    store.create(make_doc())
    for attempt in (make_doc(), make_doc(metadata={"other": 1})):
        with pytest.raises(DuplicateVersionError) as info:
            store.create(attempt)
        assert info.value.existing == make_doc()
        assert (info.value.brief_id, info.value.version) == ("acme-q3", 1)


def test_create_next_starts_at_one_and_counts_up_from_the_highest(store: BaseStore) -> None:
    assert store.create_next("acme-q3").version == 1
    store.save(make_doc(version=7))
    doc = store.create_next(
        "acme-q3",
        [{"key": "k", "title": "T", "body": "B"}],
        {"a": 1},
        status=Status.APPROVED,
        now=T0,
    )
    assert (doc.version, doc.status, doc.created_at, doc.updated_at) == (
        8,
        Status.APPROVED,
        T0,
        T0,
    )
    assert doc.sections == [Section(key="k", title="T", body="B")]
    assert store.get_strategy("acme-q3", 8) == doc


def test_create_next_returns_what_it_stored_sharing_nothing_with_the_caller(
    store: BaseStore,
) -> None:
    metadata: dict[str, object] = {"nested": {"a": [1]}}
    doc = store.create_next("acme-q3", metadata=metadata)  # type: ignore[arg-type]
    metadata["nested"] = "changed"
    doc.metadata["nested"] = "changed too"
    got = store.get_strategy("acme-q3", 1)
    assert got is not None and got.metadata == {"nested": {"a": [1]}}


def test_create_next_refuses_invalid_sections_and_stores_nothing(store: BaseStore) -> None:
    with pytest.raises(ValidationError):
        store.create_next("acme-q3", [{"key": "", "title": "T", "body": "B"}])
    with pytest.raises(ValidationError):
        store.create_next("acme-q3", metadata={"x": float("nan")})
    assert store.list_briefs() == []


def test_create_next_refuses_a_naive_now(store: BaseStore) -> None:
    with pytest.raises(ValueError, match="timezone"):
        store.create_next("acme-q3", now=datetime(2026, 1, 1))


# -- get_latest, list_briefs, list_version_numbers


def test_get_latest_is_the_highest_version_optionally_with_a_status(store: BaseStore) -> None:
    store.save(make_doc(version=1, status=Status.APPROVED))
    store.save(make_doc(version=2, status=Status.REJECTED))
    store.save(make_doc(version=3))
    latest = store.get_latest("acme-q3")
    assert latest is not None and latest.version == 3
    approved = store.get_latest("acme-q3", status=Status.APPROVED)
    assert approved is not None and approved.version == 1
    assert store.get_latest("acme-q3", status=Status.WITHDRAWN) is None


def test_list_briefs_is_sorted_by_code_point(store: BaseStore) -> None:
    for brief in ("b", "a-2", "C", "A_1", "0"):
        store.save(make_doc(brief_id=brief))
    assert store.list_briefs() == ["0", "A_1", "C", "a-2", "b"]


def test_list_version_numbers_is_newest_first(store: BaseStore) -> None:
    for version in (3, 1, 20, 2):
        store.save(make_doc(version=version))
    assert store.list_version_numbers("acme-q3") == [20, 3, 2, 1]


# -- update: compare-and-swap


def test_update_replaces_the_draft_it_expected(store: BaseStore) -> None:
    store.save(make_doc())
    new = make_doc(metadata={"v": 2})
    store.update(new, expected=make_doc())
    assert store.get_strategy("acme-q3", 1) == new


def test_update_checks_the_key_first(store: BaseStore) -> None:
    with pytest.raises(ValueError, match="same key"):
        store.update(make_doc(version=2), expected=make_doc(version=1))


def test_update_of_a_missing_version_raises_not_found(store: BaseStore) -> None:
    with pytest.raises(VersionNotFoundError) as info:
        store.update(make_doc(), expected=make_doc())
    assert (info.value.brief_id, info.value.version) == ("acme-q3", 1)
    assert isinstance(info.value, LookupError)


def test_update_refuses_when_the_stored_document_changed(store: BaseStore) -> None:
    store.save(make_doc(metadata={"v": 2}))
    with pytest.raises(ConcurrentUpdateError) as info:
        store.update(make_doc(metadata={"v": 3}), expected=make_doc(metadata={"v": 1}))
    assert info.value.current == make_doc(metadata={"v": 2})


def test_update_checks_the_expected_document_before_immutability(store: BaseStore) -> None:
    store.save(make_doc(status=Status.APPROVED))
    with pytest.raises(ConcurrentUpdateError):
        store.update(make_doc(metadata={"v": 3}), expected=make_doc())
    with pytest.raises(ImmutableVersionError):
        store.update(
            make_doc(status=Status.APPROVED, metadata={"v": 3}),
            expected=make_doc(status=Status.APPROVED),
        )


def test_update_to_the_same_document_is_a_no_op(store: BaseStore) -> None:
    store.save(make_doc(status=Status.APPROVED))
    store.update(make_doc(status=Status.APPROVED), expected=make_doc(status=Status.APPROVED))


# -- status transitions


TRANSITIONS = {
    "approve": (Status.DRAFT, Status.APPROVED),
    "reject": (Status.DRAFT, Status.REJECTED),
    "withdraw": (Status.APPROVED, Status.WITHDRAWN),
}


def _change(store: BaseStore, action: str, **kwargs: object) -> StrategyDocument:
    method = getattr(store, action)
    result: StrategyDocument = method("acme-q3", 1, **kwargs)
    return result


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_each_status_change_moves_from_its_source_and_stamps_updated_at(
    store: BaseStore, action: str
) -> None:
    source, target = TRANSITIONS[action]
    store.save(make_doc(status=source))
    kwargs: dict[str, object] = {"now": LATER}
    if action != "approve":
        kwargs["reason"] = "client said no"
    changed = _change(store, action, **kwargs)
    assert changed.status is target
    assert changed.updated_at == LATER
    assert changed.created_at == T0
    assert changed.status_reason == (None if action == "approve" else "client said no")
    assert store.get_strategy("acme-q3", 1) == changed


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_repeating_a_status_change_returns_the_version_unchanged(
    store: BaseStore, action: str
) -> None:
    source, _ = TRANSITIONS[action]
    store.save(make_doc(status=source))
    first = _change(store, action, now=LATER)
    again = _change(store, action, now=LATER + timedelta(days=1))
    assert again == first
    assert store.get_strategy("acme-q3", 1) == first


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (action, status)
        for action, (source, target) in TRANSITIONS.items()
        for status in Status
        if status not in (source, target)
    ],
)
def test_every_other_status_change_is_refused(
    store: BaseStore, action: str, status: Status
) -> None:
    store.save(make_doc(status=status))
    with pytest.raises(ImmutableVersionError) as info:
        _change(store, action, now=LATER)
    assert info.value.status is status
    source, target = TRANSITIONS[action]
    assert f"only {source.value} versions can be {target.value}" in str(info.value)
    assert store.get_strategy("acme-q3", 1) == make_doc(status=status)


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_a_status_change_of_a_missing_version_raises_not_found(
    store: BaseStore, action: str
) -> None:
    with pytest.raises(VersionNotFoundError):
        _change(store, action)


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_a_status_change_refuses_a_now_before_created_at(store: BaseStore, action: str) -> None:
    source, _ = TRANSITIONS[action]
    store.save(make_doc(status=source))
    with pytest.raises(ValueError, match="before"):
        _change(store, action, now=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        _change(store, action, now=datetime(2026, 6, 1))


def test_a_status_change_defaults_now_to_the_current_utc_time(store: BaseStore) -> None:
    store.save(make_doc())
    before = datetime.now(UTC)
    approved = store.approve("acme-q3", 1)
    assert before <= approved.updated_at <= datetime.now(UTC)


def test_withdraw_is_auditable_and_latest_approved_skips_it(store: BaseStore) -> None:
    store.save(make_doc(version=1))
    store.save(make_doc(version=2))
    store.approve("acme-q3", 1, now=LATER)
    store.approve("acme-q3", 2, now=LATER)
    store.withdraw("acme-q3", 2, reason="typo in the budget", now=LATER)
    latest = store.get_latest("acme-q3", status=Status.APPROVED)
    assert latest is not None and latest.version == 1
    withdrawn = store.get_strategy("acme-q3", 2)
    assert withdrawn is not None and withdrawn.status_reason == "typo in the budget"


# -- delete


def test_delete_removes_a_draft_and_reports_absence(store: BaseStore) -> None:
    store.save(make_doc(version=1))
    store.save(make_doc(version=2))
    assert store.delete("acme-q3", 2) is True
    assert store.delete("acme-q3", 2) is False
    assert store.list_version_numbers("acme-q3") == [1]


def test_delete_of_the_last_version_removes_the_brief(store: BaseStore) -> None:
    store.save(make_doc())
    assert store.delete("acme-q3", 1) is True
    assert store.list_briefs() == []
    assert store.create_next("acme-q3").version == 1


@pytest.mark.parametrize("status", [Status.APPROVED, Status.REJECTED, Status.WITHDRAWN])
def test_delete_refuses_what_is_not_a_draft(store: BaseStore, status: Status) -> None:
    store.save(make_doc(status=status))
    with pytest.raises(ImmutableVersionError):
        store.delete("acme-q3", 1)
    assert store.get_strategy("acme-q3", 1) is not None


# -- argument validation


BAD_IDS = ["", "../etc", "a/b", ".hidden", "a.", "CON", "con.txt", "Lpt9", "x" * 101, "a\n"]


@pytest.mark.parametrize("brief_id", BAD_IDS)
def test_every_method_validates_the_brief_id_first(store: BaseStore, brief_id: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get_strategy(brief_id, 1),
        lambda: store.list_versions_by_brief(brief_id),
        lambda: store.create_next(brief_id),
        lambda: store.get_latest(brief_id),
        lambda: store.list_version_numbers(brief_id),
        lambda: store.approve(brief_id, 1),
        lambda: store.reject(brief_id, 1),
        lambda: store.withdraw(brief_id, 1),
        lambda: store.delete(brief_id, 1),
        lambda: store.get_strategy(brief_id, 0),
    ]
    for call in calls:
        with pytest.raises(InvalidBriefIdError):
            call()


@pytest.mark.parametrize("version", [0, -1, 2**31, True, False, 1.0, "1", None])
def test_every_method_refuses_a_version_that_is_not_a_valid_int(
    store: BaseStore, version: object
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get_strategy("acme-q3", version),  # type: ignore[arg-type]
        lambda: store.approve("acme-q3", version),  # type: ignore[arg-type]
        lambda: store.reject("acme-q3", version),  # type: ignore[arg-type]
        lambda: store.withdraw("acme-q3", version),  # type: ignore[arg-type]
        lambda: store.delete("acme-q3", version),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ValueError, match="version") as info:
            call()
        assert not isinstance(info.value, InvalidBriefIdError)


def test_a_brief_id_differing_only_by_case_is_refused_for_writes_and_empty_for_reads(
    store: BaseStore,
) -> None:
    store.save(make_doc(brief_id="Acme-Q3"))
    with pytest.raises(InvalidBriefIdError, match="letter case"):
        store.save(make_doc(brief_id="acme-q3"))
    with pytest.raises(InvalidBriefIdError):
        store.create(make_doc(brief_id="ACME-Q3"))
    with pytest.raises(InvalidBriefIdError):
        store.create_next("acme-Q3")
    assert store.get_strategy("acme-q3", 1) is None
    assert store.list_version_numbers("acme-q3") == []
    assert store.list_briefs() == ["Acme-Q3"]
    # Once the brief is gone its id is free in any case.
    store.delete("Acme-Q3", 1)
    store.create_next("acme-q3")
    assert store.list_briefs() == ["acme-q3"]


# -- no shared mutable state


def test_changing_a_returned_document_in_place_never_changes_the_store(store: BaseStore) -> None:
    store.save(make_doc(metadata={"list": [1], "obj": {"k": "v"}}))
    got = store.get_strategy("acme-q3", 1)
    assert got is not None
    got.metadata["list"].append(2)  # type: ignore[union-attr]
    got.metadata["new"] = 1
    got.sections.append(Section(key="x", title="X", body=""))
    again = store.get_strategy("acme-q3", 1)
    assert again == make_doc(metadata={"list": [1], "obj": {"k": "v"}})


def test_changing_a_saved_document_in_place_never_changes_the_store(store: BaseStore) -> None:
    doc = make_doc(metadata={"list": [1]})
    store.save(doc)
    doc.metadata["list"] = "changed"
    assert store.get_strategy("acme-q3", 1) == make_doc(metadata={"list": [1]})


# -- bulk import


def test_import_documents_writes_skips_and_refuses_each_on_its_own(store: BaseStore) -> None:
    store.save(make_doc(version=2))
    store.save(make_doc(version=3, status=Status.APPROVED))
    seen: list[tuple[tuple[str, int], str, str]] = []
    summary = store.import_documents(
        [
            make_doc(version=1),
            make_doc(version=2),
            make_doc(version=2, metadata={"changed": 1}),
            make_doc(version=3, metadata={"changed": 1}),
            make_doc(brief_id="other"),
        ],
        on_result=lambda doc, outcome, error: seen.append((doc.key, outcome, type(error).__name__)),
    )
    assert (summary.written, summary.skipped, summary.refused) == (2, 1, 2)
    assert seen == [
        (("acme-q3", 1), "written", "NoneType"),
        (("acme-q3", 2), "skipped", "NoneType"),
        (("acme-q3", 2), "refused", "DuplicateVersionError"),
        (("acme-q3", 3), "refused", "DuplicateVersionError"),
        (("other", 1), "written", "NoneType"),
    ]
    assert store.list_briefs() == ["acme-q3", "other"]


def test_import_documents_with_upsert_replaces_drafts_but_not_approved_versions(
    store: BaseStore,
) -> None:
    store.save(make_doc(version=1))
    store.save(make_doc(version=2, status=Status.APPROVED))
    summary = store.import_documents(
        [make_doc(version=1, metadata={"n": 1}), make_doc(version=2, metadata={"n": 1})],
        upsert=True,
    )
    assert (summary.written, summary.skipped, summary.refused) == (1, 0, 1)
    got = store.get_strategy("acme-q3", 1)
    assert got is not None and got.metadata == {"n": 1}


def test_an_import_validates_each_batch_before_writing_any_of_it(store: BaseStore) -> None:
    """A document that fails validation stops the import where its batch would begin: every
    batch before it is written, nothing of its own (on every store, whether or not it
    validates the next batch while writing one)."""
    docs = [make_doc(brief_id=f"b{i // 10:03d}", version=i % 10 + 1) for i in range(400)]
    broken = docs[300].model_copy(update={"updated_at": datetime(2030, 1, 1)})  # naive
    heard: list[tuple[str, int]] = []
    with pytest.raises(ValidationError, match="timezone"):
        store.import_documents(
            [*docs[:300], broken, *docs[301:]], on_result=lambda doc, *_: heard.append(doc.key)
        )
    assert sum(len(store.list_version_numbers(b)) for b in store.list_briefs()) == IMPORT_BATCH
    assert heard == [doc.key for doc in docs[:IMPORT_BATCH]]
    # The store goes on as before: the rest is imported, what is there skipped.
    summary = store.import_documents(docs)
    assert (summary.written, summary.skipped) == (400 - IMPORT_BATCH, IMPORT_BATCH)


def test_an_import_whose_documents_stop_coming_writes_the_batches_before(
    store: BaseStore,
) -> None:
    """An iterator that raises in a later batch: what came before in whole batches is written."""

    def documents() -> Iterator[StrategyDocument]:
        for i in range(300):
            yield make_doc(brief_id=f"b{i // 10:03d}", version=i % 10 + 1)
        raise OSError("the source went away")

    heard: list[tuple[str, int]] = []
    with pytest.raises(OSError, match="went away"):
        store.import_documents(documents(), on_result=lambda doc, *_: heard.append(doc.key))
    assert sum(len(store.list_version_numbers(b)) for b in store.list_briefs()) == IMPORT_BATCH
    assert len(heard) == IMPORT_BATCH


def test_an_import_reads_its_documents_only_between_batches(store: BaseStore) -> None:
    """The iterator runs after the batch before it is written whole, outside its transaction."""
    seen: list[int | None] = []

    def documents() -> Iterator[StrategyDocument]:
        for i in range(IMPORT_BATCH):
            yield make_doc(brief_id="b", version=i + 1)
        latest = store.get_latest("b")
        seen.append(None if latest is None else latest.version)
        store.save(make_doc(brief_id="by-the-iterator"))
        yield make_doc(brief_id="b", version=IMPORT_BATCH + 1)

    assert store.import_documents(documents()).written == IMPORT_BATCH + 1
    assert seen == [IMPORT_BATCH]
    assert store.list_version_numbers("by-the-iterator") == [1]


# -- documents that bypassed validation


def test_a_document_changed_without_validation_is_validated_before_it_is_written(
    store: BaseStore,
) -> None:
    doc = make_doc()
    naive = doc.model_copy(update={"updated_at": datetime(2030, 1, 1)})
    with pytest.raises(ValidationError, match="timezone"):
        store.save(naive)
    doc.sections.append(Section(key="goal", title="Again", body=""))
    with pytest.raises(ValidationError, match="more than once"):
        store.create(doc)
    nan = make_doc()
    nan.metadata["score"] = float("nan")
    with pytest.raises(ValidationError, match="JSON cannot hold"):
        store.save(nan)
    with pytest.raises(InvalidBriefIdError):
        store.save(make_doc().model_copy(update={"brief_id": "../outside"}))
    with pytest.raises(ValueError, match="version"):
        store.save(make_doc().model_copy(update={"version": 0}))
    assert store.list_briefs() == []


def _bad_section_title(doc: StrategyDocument) -> None:
    doc.sections.append(Section.model_construct(key="odd", title=1, body=""))  # type: ignore[arg-type]


def _tuple_in_metadata(doc: StrategyDocument) -> None:
    doc.metadata["pair"] = (1, 2)  # type: ignore[assignment]


def _nan_in_a_nested_list(doc: StrategyDocument) -> None:
    scores: list[object] = [1.0]
    doc.metadata["scores"] = scores  # type: ignore[assignment]
    scores.append(float("nan"))


def _section_without_title(doc: StrategyDocument) -> None:
    doc.sections.append(Section.model_construct(key="odd", body=""))  # type: ignore[call-arg]


def _metadata_holding_itself(doc: StrategyDocument) -> None:
    doc.metadata["self"] = doc.metadata


def _status_forced(doc: StrategyDocument) -> None:
    object.__setattr__(doc, "status", "bogus")


def _updated_forced_before_created(doc: StrategyDocument) -> None:
    object.__setattr__(doc, "updated_at", doc.created_at - timedelta(days=1))


@pytest.mark.parametrize(
    "bypass",
    [
        _bad_section_title,
        _section_without_title,
        _metadata_holding_itself,
        _tuple_in_metadata,
        _nan_in_a_nested_list,
        _status_forced,
        _updated_forced_before_created,
    ],
)
def test_a_validated_document_broken_afterwards_is_refused(
    store: BaseStore, bypass: Callable[[StrategyDocument], None]
) -> None:
    doc = make_doc()
    bypass(doc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns while dumping the odd value
        with pytest.raises(ValidationError):
            store.save(doc)
    assert store.list_briefs() == []


def test_create_next_checks_sections_made_without_validation(store: BaseStore) -> None:
    unchecked = Section.model_construct(key="", title="No key", body="")
    with pytest.raises(ValidationError, match="at least 1 character"):
        store.create_next("acme-q3", [unchecked])
    assert store.list_briefs() == []


def test_create_next_returns_a_document_sharing_nothing_with_its_inputs(store: BaseStore) -> None:
    tags: list[JsonValue] = ["a"]
    sections = [Section(key="goal", title="Goal", body="")]
    store.create_next("acme-q3")
    created = store.create_next("acme-q3", sections, {"tags": tags})
    tags.append("changed by the caller")
    sections.append(Section(key="more", title="More", body=""))
    assert created.metadata == {"tags": ["a"]} and len(created.sections) == 1
    created.metadata["tags"].append("changed in the result")  # type: ignore[union-attr]
    assert store.get_strategy("acme-q3", 2) == make_doc(
        version=2,
        created_at=created.created_at,
        sections=[Section(key="goal", title="Goal", body="")],
        metadata={"tags": ["a"]},
    )


class _ShiftingZone(tzinfo):
    """A time zone whose offset can be changed after a timestamp uses it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self.offset

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "shifting"


class _OddDatetime(datetime):
    def astimezone(self, tz: tzinfo | None = None) -> _OddDatetime:
        return self  # claims to be in every zone at once


def test_timestamps_keep_the_moment_validation_saw(store: BaseStore) -> None:
    zone = _ShiftingZone()
    odd = _OddDatetime(2026, 1, 15, 9, 30, tzinfo=zone)
    doc = make_doc(created_at=odd, updated_at=odd)
    zone.offset = timedelta(hours=5)
    assert type(doc.created_at) is datetime and doc.created_at.tzinfo is UTC
    store.save(doc)
    assert store.get_strategy("acme-q3", 1) == make_doc()
    created = store.create_next("acme-q3", now=odd)
    assert type(created.created_at) is datetime and created.created_at.tzinfo is UTC


def test_a_subclass_document_passed_off_as_the_model_is_validated_again(
    store: BaseStore,
) -> None:
    doc = _Annotated.model_validate(make_doc().model_dump())
    object.__setattr__(doc, "__class__", StrategyDocument)
    object.__setattr__(doc, "status", "bogus")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns while dumping the odd value
        with pytest.raises(ValidationError, match="status"):
            store.save(doc)


def test_create_next_keeps_no_section_object_of_the_caller(store: BaseStore) -> None:
    given = Section(key="goal", title="Goal", body="")
    created = store.create_next("acme-q3", [given])
    assert created.sections == [given] and created.sections[0] is not given


class _Annotated(StrategyDocument):
    note: str = "kept out of the file format"


def test_a_subclass_with_fields_of_its_own_is_refused(store: BaseStore) -> None:
    doc = _Annotated.model_validate(make_doc().model_dump())
    with pytest.raises(ValidationError, match="note"):
        store.save(doc)
    assert store.list_briefs() == []


def test_a_key_added_in_place_is_written_in_canonical_order(store: BaseStore) -> None:
    doc = make_doc(metadata={"b": 1})
    doc.metadata["a"] = {"z": 1, "y": 2}
    store.save(doc)
    loaded = store._load("acme-q3", 1)
    assert loaded is not None
    assert loaded[1] == make_doc(metadata={"a": {"y": 2, "z": 1}, "b": 1}).to_json_bytes()
    assert b'"a": {\n      "y": 2' in loaded[1]


def test_get_latest_checks_the_brief_id_before_the_status(store: BaseStore) -> None:
    with pytest.raises(InvalidBriefIdError):
        store.get_latest("../etc", status="bogus")


def test_an_import_holding_one_key_twice_writes_the_first_and_refuses_the_second(
    store: BaseStore,
) -> None:
    first, second = make_doc(metadata={"take": 1}), make_doc(metadata={"take": 2})
    summary = store.import_documents([first, make_doc("other", 1), second])
    assert (summary.written, summary.skipped, summary.refused) == (2, 0, 1)
    assert store.get_strategy("acme-q3", 1) == first


# -- a status changes only through approve, reject and withdraw


@pytest.mark.parametrize("status", [Status.APPROVED, Status.REJECTED, Status.WITHDRAWN])
def test_save_cannot_change_a_stored_drafts_status(store: BaseStore, status: Status) -> None:
    draft = store.create_next("acme", [{"key": "goal", "title": "Goal", "body": "Grow."}])
    with pytest.raises(ValueError, match=r"through save or update.*call (approve|reject)\(\)"):
        store.save(draft.model_copy(update={"status": status}))
    with pytest.raises(StatusChangeError) as caught:
        store.save(draft.model_copy(update={"status": status, "metadata": {"late": 1}}))
    assert (caught.value.brief_id, caught.value.version, caught.value.status) == (
        "acme",
        1,
        status,
    )
    assert store.get_strategy("acme", 1) == draft


def test_update_cannot_change_a_stored_drafts_status(store: BaseStore) -> None:
    draft = store.create_next("acme")
    with pytest.raises(StatusChangeError, match="call approve"):
        store.update(draft.model_copy(update={"status": Status.APPROVED}), expected=draft)
    # The compare-and-swap is checked first.
    other = draft.model_copy(update={"metadata": {"seen": True}})
    with pytest.raises(ConcurrentUpdateError):
        store.update(draft.model_copy(update={"status": Status.APPROVED}), expected=other)
    assert store.get_strategy("acme", 1) == draft


def test_a_new_version_may_be_stored_with_any_status(store: BaseStore) -> None:
    approved = make_doc("acme", 1, status=Status.APPROVED)
    store.save(approved)
    store.create(make_doc("acme", 2, status=Status.WITHDRAWN, status_reason="old"))
    assert store.get_strategy("acme", 1) == approved
    assert store.get_latest("acme").status is Status.WITHDRAWN  # type: ignore[union-attr]


def test_an_upserting_import_refuses_to_change_a_drafts_status(store: BaseStore) -> None:
    store.save(make_doc("acme", 1))
    seen: list[object] = []
    summary = store.import_documents(
        [make_doc("acme", 1, status=Status.APPROVED)],
        upsert=True,
        on_result=lambda doc, outcome, error: seen.append((outcome, type(error))),
    )
    assert (summary.written, summary.refused) == (0, 1)
    assert seen == [("refused", StatusChangeError)]
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


# -- iter_documents


def test_iter_documents_streams_briefs_and_versions_ascending(store: BaseStore) -> None:
    for brief in ["beta", "acme", "Zed"]:
        for _ in range(3):
            store.create_next(brief)
    keys = [doc.key for doc in store.iter_documents()]
    assert keys == [(b, v) for b in ["Zed", "acme", "beta"] for v in (1, 2, 3)]
    picked = [doc.key for doc in store.iter_documents(["beta", "nobody", "acme", "beta"])]
    assert picked == [(b, v) for b in ["acme", "beta"] for v in (1, 2, 3)]
    assert list(store.iter_documents([])) == []


def test_iter_documents_checks_every_id_before_reading(store: BaseStore) -> None:
    store.create_next("acme")
    with pytest.raises(InvalidBriefIdError):
        store.iter_documents(["acme", "../etc"])
    with pytest.raises(TypeError, match="not one string"):
        store.iter_documents("acme")


def test_iter_documents_gives_copies_the_caller_may_change(store: BaseStore) -> None:
    store.create_next("acme", metadata={"n": 1})
    for doc in store.iter_documents():
        doc.metadata["n"] = 2
    assert store.get_strategy("acme", 1).metadata == {"n": 1}  # type: ignore[union-attr]


def test_get_latest_takes_a_status_or_its_value_and_refuses_others(store: BaseStore) -> None:
    store.create_next("acme")
    approved = store.approve("acme", 1)
    store.create_next("acme")
    assert store.get_latest("acme", status="approved") == approved
    assert store.get_latest("acme", status=Status.APPROVED) == approved
    with pytest.raises(
        ValueError,
        match="status must be one of draft, approved, rejected, withdrawn, not 'approve'",
    ):
        store.get_latest("acme", status="approve")


def test_an_import_stops_when_the_store_becomes_unavailable() -> None:
    """An unavailable server says nothing of the document: the import raises, counting nothing."""

    class Unreachable(MemoryStore):
        def _case_variant(self, brief_id: str) -> str | None:
            if brief_id == "globex":
                raise StoreUnavailableError("db.example", "strategies", "connection lost")
            return super()._case_variant(brief_id)

    store = Unreachable()
    results: list[str] = []
    with pytest.raises(StoreUnavailableError):
        store.import_documents(
            [make_doc("acme"), make_doc("globex"), make_doc("initech")],
            on_result=lambda doc, outcome, problem: results.append(f"{doc.brief_id} {outcome}"),
        )
    assert results == ["acme written"]
    assert store.list_briefs() == ["acme"]

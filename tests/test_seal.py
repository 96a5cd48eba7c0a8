"""The content seal (DESIGN §2): recomputed independently, filled, checked and refused.

The independent recomputations are the README's own recipes: the Python
lines are taken from the README and run here, and the ``jq`` line is run
when jq is installed, so the README cannot drift from what the store writes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from strategystore import (
    CorruptDocumentError,
    FileStore,
    MemoryStore,
    Section,
    Status,
    StrategyDocument,
)
from tests.conftest import T0, make_doc

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_block(marker: str, language: str) -> str:
    """The first fenced ``language`` block after the line holding ``marker``."""
    text = README.read_text()
    start = text.index(marker)
    found = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert found is not None, f"no {language} block after {marker!r} in the README"
    return found.group(1)


def _python_recipe() -> Callable[[str], str]:
    namespace: dict[str, Any] = {}
    exec(_readme_block("<!-- seal: python -->", "python"), namespace)
    seal: Callable[[str], str] = namespace["seal"]
    return seal


SEAL = _python_recipe()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def sealed_documents(draw: st.DrawFn) -> StrategyDocument:
    keys = draw(st.lists(st.text(min_size=1, max_size=8), max_size=4, unique=True))
    created = T0 + timedelta(microseconds=draw(st.integers(0, 10**12)))
    return StrategyDocument(
        brief_id=draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}[a-z0-9_-]", fullmatch=True)),
        version=draw(st.integers(1, 2**31 - 1)),
        status=draw(st.sampled_from([Status.APPROVED, Status.REJECTED, Status.WITHDRAWN])),
        status_reason=draw(st.none() | st.text(max_size=10)),
        created_at=created,
        sections=[
            Section(key=key, title=draw(st.text(max_size=10)), body=draw(st.text(max_size=40)))
            for key in keys
        ],
        metadata=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=sealed_documents())
def test_the_readme_recipe_recomputes_the_seal_of_every_file(
    doc: StrategyDocument, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("seal") / "doc.json"
    path.write_bytes(doc.to_json_bytes())
    stated = json.loads(path.read_bytes())["content_digest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", stated)
    assert SEAL(str(path)) == stated == doc.content_digest


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=sealed_documents().filter(
        # jq 1.6 respells numbers a double cannot hold exactly and escapes
        # U+007F (see the README).
        lambda d: (
            "\x7f" not in d.to_json_bytes().decode()
            and not any(
                isinstance(v, float) or (isinstance(v, int) and abs(v) > 2**53)
                for v in _leaves(d.metadata)
            )
        )
    )
)
def test_the_readme_jq_line_recomputes_the_seal(
    doc: StrategyDocument, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("seal") / "doc.json"
    path.write_bytes(doc.to_json_bytes())
    line = (
        _readme_block("<!-- seal: jq -->", "sh").strip().replace("acme-q3-launch/1.json", str(path))
    )
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout
    assert out.strip() == doc.content_digest


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


# -- the model fills, checks and refuses seals


def test_a_draft_has_no_seal_and_every_other_status_has_one() -> None:
    draft = make_doc()
    assert draft.content_digest is None
    sealed = {s: make_doc(status=s).content_digest for s in Status if s is not Status.DRAFT}
    # Status, reason and updated_at are outside the seal.
    assert len(set(sealed.values())) == 1
    withdrawn = make_doc(status=Status.WITHDRAWN, status_reason="why", updated_at=T0 + timedelta(1))
    assert withdrawn.content_digest == sealed[Status.APPROVED]


def test_the_seal_follows_the_content_through_model_copy() -> None:
    approved = make_doc(status=Status.APPROVED)
    edited = approved.model_copy(update={"metadata": {"late": True}})
    assert edited.content_digest not in (None, approved.content_digest)
    assert approved.model_copy(update={"status": Status.DRAFT}).content_digest is None


def test_a_seal_given_when_building_must_be_the_seal_of_the_content() -> None:
    approved = make_doc(status=Status.APPROVED)
    fields = approved.model_dump()
    assert StrategyDocument.model_validate(fields) == approved
    with pytest.raises(ValidationError, match="approved content changed after it was sealed"):
        StrategyDocument.model_validate({**fields, "metadata": {"late": True}})
    with pytest.raises(ValidationError, match="has no seal"):
        StrategyDocument.model_validate({**fields, "content_digest": None})
    with pytest.raises(ValidationError, match="must be null for a draft"):
        StrategyDocument.model_validate({**fields, "status": "draft"})
    # Not given at all: derived, as every other default.
    del fields["content_digest"]
    assert StrategyDocument.model_validate(fields).content_digest == approved.content_digest


def test_approve_and_reject_seal_and_withdraw_keeps_the_seal() -> None:
    store = MemoryStore()
    store.create_next("acme", [{"key": "goal", "title": "Goal", "body": "Grow."}], now=T0)
    store.create_next("acme", now=T0)
    approved = store.approve("acme", 1, now=T0)
    assert approved.content_digest == make_seal_of(approved)
    withdrawn = store.withdraw("acme", 1, reason="paused", now=T0 + timedelta(hours=1))
    assert withdrawn.content_digest == approved.content_digest
    assert store.reject("acme", 2, now=T0).content_digest is not None


def make_seal_of(doc: StrategyDocument) -> str:
    """The seal by the README recipe, from the document's canonical bytes."""
    path = Path(__file__).parent / ".seal-check.json"
    try:
        path.write_bytes(doc.to_json_bytes())
        return SEAL(str(path))
    finally:
        path.unlink(missing_ok=True)


# -- every edit to a sealed file is caught

_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a section body": lambda d: d["sections"][0].update(body="Grow slowly."),
    "a section title": lambda d: d["sections"][0].update(title="Aim"),
    "a section key": lambda d: d["sections"][0].update(key="aim"),
    "the section order": lambda d: d["sections"].reverse(),
    "a section removed": lambda d: d["sections"].pop(),
    "a section added": lambda d: d["sections"].append({"key": "x", "title": "", "body": ""}),
    "a metadata value": lambda d: d["metadata"].update(score=0.6),
    "a metadata value's type": lambda d: d["metadata"].update(score=1),
    "a metadata key added": lambda d: d["metadata"].update(extra=None),
    "a metadata key removed": lambda d: d["metadata"].pop("model"),
    "created_at": lambda d: d.update(created_at="2026-01-15T09:29:59Z"),
    "the seal altered": lambda d: d.update(content_digest="sha256:" + "0" * 64),
    "the seal removed": lambda d: d.update(content_digest=None),
    "the seal left out": lambda d: d.pop("content_digest"),
    "put back to draft": lambda d: d.update(status="draft"),
}


@pytest.mark.parametrize("edit", _EDITS, ids=list(_EDITS))
def test_every_edit_to_a_sealed_file_is_caught(file_store: FileStore, edit: str) -> None:
    file_store.create(
        make_doc(
            "acme",
            1,
            sections=[
                {"key": "goal", "title": "Goal", "body": "Grow."},
                {"key": "plan", "title": "Plan", "body": "Ads."},
            ],
        )
    )
    file_store.approve("acme", 1, now=T0 + timedelta(hours=1))
    path = file_store.document_path("acme", 1)
    fields = json.loads(path.read_bytes())
    _EDITS[edit](fields)
    path.write_text(json.dumps(fields, indent=2, ensure_ascii=False) + "\n")
    with pytest.raises(CorruptDocumentError) as caught:
        file_store.get_strategy("acme", 1)
    assert caught.value.path == path
    assert "restore" in caught.value.reason  # the way out is in the message


@pytest.mark.parametrize(
    "change",
    [
        {"status": "withdrawn", "status_reason": "paused"},
        {"updated_at": "2026-02-01T00:00:00Z"},
    ],
)
def test_status_reason_and_updated_at_are_outside_the_seal(
    file_store: FileStore, change: dict[str, str]
) -> None:
    file_store.create(make_doc("acme", 1))
    approved = file_store.approve("acme", 1, now=T0)
    path = file_store.document_path("acme", 1)
    path.write_text(json.dumps({**json.loads(path.read_bytes()), **change}, indent=2) + "\n")
    read = file_store.get_strategy("acme", 1)
    assert read is not None and read.content_digest == approved.content_digest
